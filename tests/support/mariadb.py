"""Throwaway MariaDB databases on the local server, for tests.

``KAIROS_TEST_MARIADB_URL`` points at a database to connect to for creating others (default:
the local server's ``test`` database, as root). Without a server the tests that need one are
skipped, except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid

import MySQLdb
import pytest
from sqlalchemy.engine import make_url

__all__ = ["ADMIN_URL", "create_database", "drop_database", "empty_database", "require_mariadb"]

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
