"""Throwaway PostgreSQL databases on the local server, for tests.

``KAIROS_TEST_POSTGRES_URL`` points at a database to connect to for creating others (default:
the local server's ``postgres`` database). Without a server the tests that need one are skipped,
except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

__all__ = [
    "ADMIN_URL",
    "ThrowawayPostgres",
    "create_database",
    "drop_database",
    "require_postgres",
]

ADMIN_URL = os.environ.get(
    "KAIROS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _connect() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


def require_postgres() -> None:
    try:
        _connect().close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI but unreachable: {exc}")
        pytest.skip(f"no PostgreSQL server at {ADMIN_URL}: {exc}")


def create_database() -> str:
    """A new empty database; returns its SQLAlchemy URL."""
    name = f"kairos_test_{uuid.uuid4().hex[:12]}"
    with _connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    name = make_url(url).database
    with _connect() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class ThrowawayPostgres:
    """A PostgreSQL server of the test's own (``initdb`` and ``pg_ctl`` on a free port), for
    tests that must stop the database: a test never stops a server it did not start.

    Skipped where the server's programs are missing, except under ``CI=true``."""

    def __init__(self) -> None:
        self._bin = _server_programs()
        # Its own folder under /tmp: pytest's are closed to the ``postgres`` account.
        self._root = Path(tempfile.mkdtemp(prefix="kairos-pg-"))
        self._data = self._root / "pgdata"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # initdb refuses to run as root: the server runs as the ``postgres`` account then.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self._root.chmod(0o777)

    def __enter__(self) -> ThrowawayPostgres:
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self._root, ignore_errors=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self._data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self._data), "-o", options, "-w", "-l", str(self._log), "start"
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "stop")

    @property
    def _log(self) -> Path:
        return self._root / "postgres.log"

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [*self._as, str(self._bin / program), *args]
        subprocess.run(command, check=check, capture_output=True, timeout=120)


def _server_programs() -> Path:
    try:
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        bindir = Path(found.stdout.strip())
    except FileNotFoundError:
        bindir = Path()
    if not (bindir / "initdb").exists() or shutil.which("runuser") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL's initdb and pg_ctl are required under CI")
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed here")
    return bindir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
