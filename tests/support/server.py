"""Real ``kairos serve`` processes for end-to-end tests."""

from __future__ import annotations

import functools
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from tests.support.target import Delivery

__all__ = [
    "Command",
    "ForkedProcess",
    "Forker",
    "KairosProcess",
    "TargetProcess",
    "free_port",
    "header",
    "wait_until",
]

ADMIN_TOKEN = "e2e-admin-token"
_NOFILE = resource.RLIMIT_NOFILE


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


@dataclass(frozen=True)
class Command:
    """A ``kairos`` command: its arguments, its whole environment, where its output goes."""

    args: list[str]
    env: dict[str, str]
    log_path: Path | None = None
    stdin: str = ""


class ForkedProcess:
    """What tests use of a ``Popen``, for a process a ``Forker`` started."""

    def __init__(self, forker: Forker, pid: int) -> None:
        self._forker = forker
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._forker.poll(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


Process = subprocess.Popen[bytes] | ForkedProcess


class Forker:
    """Starts ``kairos`` commands by forking a process that has imported Kairos already
    (``tests.support.forker``): in milliseconds instead of the seconds each new interpreter
    spends importing, and those started together all begin at the same instant."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.forker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, commands: list[Command]) -> list[ForkedProcess]:
        """Start ``commands`` together; they begin once all of them are forked."""
        runs = [
            {"args": c.args, "env": c.env, "log": c.log_path and str(c.log_path), "stdin": c.stdin}
            for c in commands
        ]
        pids: list[int] = self._ask({"run": runs})["pids"]
        return [ForkedProcess(self, pid) for pid in pids]

    def poll(self, pid: int) -> int | None:
        returncode: int | None = self._ask({"poll": pid})["returncode"]
        return returncode

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self._proc.stdout.readline())
        return answer

    def close(self) -> None:
        """End the forker; it kills what it started that still runs."""
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.close()
        self._proc.wait(30)
        self._proc.stdout.close()

    def __enter__(self) -> Forker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class KairosProcess:
    """``kairos serve`` in a child process on a free port, with an admin token set. ``env`` adds
    to the environment, or with None takes a variable out of it; ``file_limit`` is the child's
    (soft, hard) open-file limit."""

    def __init__(
        self,
        db_url: str,
        *,
        env: dict[str, str | None] | None = None,
        log_path: Path | None = None,
        token: str | None = ADMIN_TOKEN,
        file_limit: tuple[int, int] | None = None,
    ) -> None:
        self.db_url = db_url
        self.file_limit = file_limit
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self._env = env or {}
        self.log_path = log_path
        self.proc: Process | None = None

    def start(self, ready_timeout: float = 30) -> KairosProcess:
        return self.launch().wait_ready(ready_timeout)

    def launch(self, proc: Process | None = None) -> KairosProcess:
        """Start the process without waiting for it (see ``wait_ready``), or take ``proc``, a
        process of ``self.command()`` that a ``Forker`` started."""
        if proc is not None:
            self.proc = proc
            return self
        command = self.command()
        argv = [sys.executable, "-m", "kairos", *command.args]
        limit = self.file_limit
        limited = None if limit is None else functools.partial(resource.setrlimit, _NOFILE, limit)
        if self.log_path is None:
            self.proc = subprocess.Popen(
                argv, env=command.env, stdout=subprocess.DEVNULL, preexec_fn=limited
            )
        else:
            with self.log_path.open("ab") as out:  # the child keeps its own copy open
                self.proc = subprocess.Popen(
                    argv, env=command.env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=limited
                )
        return self

    def command(self) -> Command:
        env = {k: v for k, v in {**os.environ, **self._env}.items() if v is not None}
        if self.token is not None:
            env["KAIROS_ADMIN_TOKEN"] = self.token
        args = ["serve", "--port", str(self.port), "--db", self.db_url]
        return Command(args, env, self.log_path)

    def wait_ready(self, ready_timeout: float = 30) -> KairosProcess:
        assert self.proc is not None
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


class TargetProcess:
    """The recording target in its own process; deliveries are read back from its log."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.support.target"),
                *("--port", str(self.port), "--log", str(log)),
            ],
        )
        wait_until(self._up, 15, what="the target process")

    def _up(self) -> bool:
        try:
            httpx.get(self.url("/ping"), timeout=1)
            return True
        except httpx.HTTPError:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def deliveries(self, path: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        # A line still being written has no newline yet: read only whole lines.
        whole = self.log.read_text().rpartition("\n")[0]
        entries = [json.loads(line) for line in whole.splitlines() if line.strip()]
        return [e for e in entries if path is None or e["path"] == path]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def header(entry: dict[str, Any] | Delivery, name: str) -> str:
    """Header ``name`` of a call, from a log entry or a ``Delivery``, whatever its case."""
    raw = entry.headers if isinstance(entry, Delivery) else entry["headers"]
    headers = {k.lower(): v for k, v in raw.items()}
    return str(headers[name.lower()])
