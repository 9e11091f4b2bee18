"""A new, empty database on each SQL backend, for tests that run on all three."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import mariadb, postgres

__all__ = ["SQL_BACKENDS", "new_sql_database"]

SQL_BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]
"""Parameters of a fixture made with ``new_sql_database``."""


@contextlib.contextmanager
def new_sql_database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of a new database on ``backend`` (one of ``SQL_BACKENDS``; a SQLite file goes in
    ``directory``), dropped afterwards. Skips without the server (fails under CI)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory}/k.db"
    elif backend == "mariadb":
        mariadb.require_mariadb()
        url = mariadb.create_database()
        try:
            yield url
        finally:
            mariadb.drop_database(url)
    else:
        postgres.require_postgres()
        url = postgres.create_database()
        try:
            yield url
        finally:
            postgres.drop_database(url)
