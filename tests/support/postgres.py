"""Throwaway PostgreSQL databases on the local server, for tests.

``KAIROS_TEST_POSTGRES_URL`` points at a database to connect to for creating others (default:
the local server's ``postgres`` database). Without a server the tests that need one are skipped,
except under ``CI=true``, where a missing server is a failure.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

__all__ = ["ADMIN_URL", "create_database", "drop_database", "require_postgres"]

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
