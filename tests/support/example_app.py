"""The example app (``examples/fastapi_app``) under a real uvicorn, and its table read back."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

import httpx
import psycopg
from tests.support.server import ADMIN_TOKEN, free_port, wait_until

__all__ = ["AppServer", "Tick", "read_ticks"]

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Tick:
    """One row of the app's ``ticks`` table: one call of its ``record_tick`` task."""

    job_id: str
    scheduled_for: datetime
    attempt: int
    pid: int


def read_ticks(app_database_url: str) -> list[Tick]:
    query = "SELECT job_id, scheduled_for, attempt, pid FROM ticks"
    if app_database_url.startswith("sqlite:///"):
        path = app_database_url.removeprefix("sqlite:///")
        if not Path(path).exists():
            return []
        with closing(sqlite3.connect(path, timeout=30)) as conn:
            try:
                rows = conn.execute(query).fetchall()
            except sqlite3.OperationalError:  # no table yet
                return []
    else:
        with psycopg.connect(app_database_url) as pg:
            try:
                rows = pg.execute(query).fetchall()
            except psycopg.errors.UndefinedTable:
                return []
    return [Tick(job, datetime.fromisoformat(at), attempt, pid) for job, at, attempt, pid in rows]


class AppServer:
    """``python -m uvicorn examples.fastapi_app.app:app`` with ``args`` (``--workers 4``,
    ``--reload``...) on a free port, from the repository's root, in a process group of its own
    so that stopping it stops its workers too."""

    def __init__(self, kairos_url: str, app_url: str, log_path: Path, *args: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {
            **os.environ,
            "KAIROS_DATABASE_URL": kairos_url,
            "APP_DATABASE_URL": app_url,
            "KAIROS_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        argv = [sys.executable, "-m", "uvicorn", "examples.fastapi_app.app:app"]
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*argv, "--port", str(self.port), *args],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_for_nodes(self, count: int, timeout: float = 45) -> None:
        """Wait until ``count`` Kairos nodes (one per worker) have joined."""
        wait_until(lambda: self._nodes() == count, timeout, interval=0.1, what=f"{count} nodes")

    def _nodes(self) -> int | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"uvicorn exited with {self.proc.returncode}")
        try:
            answer = httpx.get(
                f"{self.base_url}/scheduler/cluster",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=2,
            )
        except httpx.HTTPError:
            return None
        return len(answer.json()["nodes"]) if answer.status_code == 200 else None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10)

    def workers(self) -> set[int]:
        """The worker processes: the supervisor's children that run the app."""
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:  # it ended meanwhile
                continue
            parent = int(stat.rpartition(")")[2].split()[1])
            if parent == self.proc.pid and b"spawn_main" in cmdline:
                found.add(int(entry.name))
        return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # any worker left behind
        self.proc.wait(10)

    def __enter__(self) -> AppServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
