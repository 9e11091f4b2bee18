"""Throwaway MariaDB databases on the local server, for tests.

``KAIROS_TEST_MARIADB_URL`` points at a database to connect to for creating others (default:
the local server's ``test`` database, as root). Without a server the tests that need one are
skipped, except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import MySQLdb
import pytest
from sqlalchemy.engine import make_url

__all__ = [
    "ADMIN_URL",
    "ThrowawayMariaDb",
    "create_database",
    "drop_database",
    "empty_database",
    "require_mariadb",
]

ADMIN_URL = os.environ.get("KAIROS_TEST_MARIADB_URL", "mariadb://root@127.0.0.1:3306/test")


def _connect(database: str | None = None) -> MySQLdb.Connection:
    url = make_url(ADMIN_URL)
    return MySQLdb.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=database or url.database or "",
        connect_timeout=5,
        autocommit=True,
    )


def require_mariadb() -> None:
    try:
        _connect().close()
    except MySQLdb.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"MariaDB is required under CI but unreachable: {exc}")
        pytest.skip(f"no MariaDB server at {ADMIN_URL}: {exc}")


def create_database() -> str:
    """A new empty database (with the server's default, case-insensitive collation, as most
    are); returns its URL."""
    name = f"kairos_test_{uuid.uuid4().hex[:12]}"
    conn = _connect()
    try:
        conn.cursor().execute(f"CREATE DATABASE `{name}`")
    finally:
        conn.close()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    conn = _connect()
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{make_url(url).database}`")
    finally:
        conn.close()


def empty_database(url: str) -> None:
    """Empty every table of Kairos's (not the migrations' own): a table added later is emptied
    too, so no test sees what another left behind, whatever their order."""
    conn = _connect(make_url(url).database)
    try:
        cursor = conn.cursor()
        cursor.execute("SHOW TABLES LIKE 'kairos%%'")
        for (table,) in cursor.fetchall():
            cursor.execute(f"TRUNCATE TABLE `{table}`")
    finally:
        conn.close()


class ThrowawayMariaDb:
    """A MariaDB server of the test's own (``mariadb-install-db`` and ``mariadbd`` on a free
    port), for tests that must stop the database: a test never stops a server it did not start.
    ``url`` is its database ``kairos``.

    Skipped where the server's programs are missing, except under ``CI=true``."""

    _START_TIMEOUT_S = 60

    def __init__(self) -> None:
        self._install = _program("mariadb-install-db", "/usr/bin")
        self._server = _program("mariadbd", "/usr/sbin")
        self._root = Path(tempfile.mkdtemp(prefix="kairos-mariadb-"))
        self._data = self._root / "data"
        self.port = _free_port()
        self.url = f"mariadb://root@127.0.0.1:{self.port}/kairos"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ThrowawayMariaDb:
        subprocess.run(
            [
                str(self._install),
                "--no-defaults",
                f"--datadir={self._data}",
                "--auth-root-authentication-method=normal",
                "--user=root",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.start()
        with _admin(self.port) as cursor:
            cursor.execute("CREATE DATABASE kairos")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(30)
        shutil.rmtree(self._root, ignore_errors=True)

    def start(self) -> None:
        """Start the server and return once it takes connections."""
        self._process = subprocess.Popen(
            [
                str(self._server),
                "--no-defaults",
                f"--datadir={self._data}",
                "--user=root",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self._root / 'mariadb.sock'}",
                f"--log-error={self._root / 'mariadb.log'}",
                "--innodb-flush-log-at-trx-commit=2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self._START_TIMEOUT_S
        while True:
            try:
                with _admin(self.port):
                    return
            except MySQLdb.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = (self._root / "mariadb.log").read_text(errors="replace")
                    raise AssertionError(f"MariaDB did not start: {log[-2000:]}") from None
            time.sleep(0.05)

    def stop(self) -> None:
        """Shut the server down cleanly, and wait until it has."""
        assert self._process is not None
        self._process.send_signal(signal.SIGTERM)
        self._process.wait(60)
        self._process = None


@contextlib.contextmanager
def _admin(port: int) -> Iterator[Any]:
    """A cursor on the throwaway server, as root, its connection closed on leaving."""
    conn = MySQLdb.connect(
        host="127.0.0.1", port=port, user="root", connect_timeout=2, autocommit=True
    )
    try:
        yield conn.cursor()
    finally:
        conn.close()


def _program(name: str, directory: str) -> Path:
    found = shutil.which(name) or shutil.which(name, path=directory)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"MariaDB's {name} is required under CI")
        pytest.skip(f"MariaDB's {name} is not installed here")
    return Path(found)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
