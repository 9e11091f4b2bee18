"""Real ``kairos serve`` processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

__all__ = ["KairosProcess", "free_port", "wait_until"]

ADMIN_TOKEN = "e2e-admin-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: object, timeout: float, interval: float = 0.02, what: str = "") -> None:
    """Poll ``condition()`` until it is truthy; fail after ``timeout`` seconds."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


class KairosProcess:
    """``kairos serve`` in a child process on a free port, with an admin token set."""

    def __init__(
        self,
        db_url: str,
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        token: str | None = ADMIN_TOKEN,
    ) -> None:
        self.db_url = db_url
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self._env = env or {}
        self._log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 30) -> KairosProcess:
        env = {**os.environ, **self._env}
        if self.token is not None:
            env["KAIROS_ADMIN_TOKEN"] = self.token
        command = [sys.executable, "-m", "kairos", "serve", "--port", str(self.port)]
        command += ["--db", self.db_url]
        if self._log_path is None:
            self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        else:
            with self._log_path.open("ab") as out:  # the child keeps its own copy open
                self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(self._ready, ready_timeout, interval=0.05, what=f"kairos on {self.port}")
        except BaseException:
            self.proc.kill()
            self.proc.wait(10)
            raise
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"kairos serve exited with {self.proc.returncode}")
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self) -> KairosProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc is not None:
            self.stop()
