"""Starting and stopping the benchmark's processes: Kairos servers and the target."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = [
    "Process",
    "cpu_seconds",
    "create_server_database",
    "drop_server_database",
    "free_port",
    "mariadb_reachable",
    "pg_reachable",
    "redis_reachable",
    "rss_mib",
    "start_kairos",
    "start_target",
    "start_threaded_target",
]

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Process:
    def __init__(self, command: list[str], env: dict[str, str], probe_url: str) -> None:
        self.probe_url = probe_url
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self._wait_ready()
        self.ready_s = time.perf_counter() - started
        """From spawning the process until its probe answered."""

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"process exited early: {stderr[-2000:]}")
            try:
                with urllib.request.urlopen(self.probe_url, timeout=1):
                    return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError(f"{self.probe_url} not ready after {timeout_s} s")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stderr:
            self.proc.stderr.close()


def start_target() -> tuple[Process, str]:
    port = free_port()
    command = [sys.executable, "-m", "bench.target", "--port", str(port)]
    base = f"http://127.0.0.1:{port}"
    return Process(command, dict(os.environ), f"{base}/__reset"), base


def start_threaded_target(calls: Path) -> tuple[Process, str]:
    """The tests' modest target (``ThreadedTarget``: ``ThreadingHTTPServer`` with Python's
    defaults, listen backlog 5, a thread per connection), logging every call to ``calls``."""
    port = free_port()
    command = [sys.executable, "-m", "tests.support.target", "--threaded"]
    command += ["--port", str(port), "--log", str(calls)]
    base = f"http://127.0.0.1:{port}"
    return Process(command, dict(os.environ), f"{base}/__probe"), base


def start_kairos(db_url: str, extra_env: dict[str, str] | None = None) -> tuple[Process, str]:
    port = free_port()
    env = {**os.environ, "KAIROS_ADMIN_TOKEN": TOKEN, "KAIROS_LOG_LEVEL": "warning"}
    env |= extra_env or {}
    command = [sys.executable, "-m", "kairos", "serve", "--port", str(port), "--db", db_url]
    base = f"http://127.0.0.1:{port}"
    return Process(command, env, f"{base}/readyz"), base


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory}/bench.db"


def create_server_database(admin_url: str) -> str:
    """A fresh database on the PostgreSQL or MariaDB server of ``admin_url``, or a fresh key
    prefix on the Redis of ``admin_url``; returns its URL."""
    import uuid

    from sqlalchemy.engine import make_url

    if _is_redis(admin_url):
        return f"{admin_url}?prefix=kairos-bench-{uuid.uuid4().hex[:10]}:"
    name = f"kairos_bench_{uuid.uuid4().hex[:10]}"
    _on_server(admin_url, f"CREATE DATABASE {_quoted(admin_url, name)}")
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_server_database(admin_url: str, url: str) -> None:
    from sqlalchemy.engine import make_url

    if _is_redis(admin_url):
        _drop_redis_prefix(admin_url, url.rsplit("?prefix=", 1)[1])
        return
    name = _quoted(admin_url, make_url(url).database or "")
    force = "" if _is_mariadb(admin_url) else " WITH (FORCE)"
    _on_server(admin_url, f"DROP DATABASE IF EXISTS {name}{force}")


def _is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://"))


def _drop_redis_prefix(url: str, prefix: str) -> None:
    import redis

    with redis.Redis.from_url(url) as client:
        doomed = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(doomed), 1000):
            client.delete(*doomed[start : start + 1000])


def _is_mariadb(url: str) -> bool:
    return url.split(":", 1)[0].split("+", 1)[0] in ("mariadb", "mysql")


def _quoted(admin_url: str, name: str) -> str:
    return f"`{name}`" if _is_mariadb(admin_url) else f'"{name}"'


def _on_server(admin_url: str, statement: str) -> None:
    if _is_mariadb(admin_url):
        import MySQLdb
        from sqlalchemy.engine import make_url

        url = make_url(admin_url)
        conn = MySQLdb.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
            autocommit=True,
        )
        try:
            conn.cursor().execute(statement)
        finally:
            conn.close()
        return
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement)


def pg_reachable(admin_url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(admin_url, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def mariadb_reachable(admin_url: str) -> bool:
    import MySQLdb

    try:
        _on_server(admin_url, "DO 1")
    except MySQLdb.Error:
        return False
    return True


def redis_reachable(url: str) -> bool:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError:
        return False
    return True


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process and its children (a server's HTTP workers) have
    used so far (Linux ``/proc``)."""
    total = 0
    for member in _tree(pid):
        fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int, *, peak: bool = False) -> float:
    """Resident memory of the process and its children now (or the sum of their peaks), MiB."""
    key = "VmHWM:" if peak else "VmRSS:"
    kib = 0
    for member in _tree(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith(key):
                kib += int(line.split()[1])
    return kib / 1024


def _tree(pid: int) -> list[int]:
    """The process and its descendants (each thread lists the children it started)."""
    children = [
        int(child)
        for task in Path(f"/proc/{pid}/task").glob("*/children")
        for child in task.read_text().split()
    ]
    return [pid, *(member for child in children for member in _tree(child))]
