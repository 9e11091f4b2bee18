"""Writes to the database a running app uses, made behind its back through a connection of the
test's own: as another process, or an older version of Kairos, would have made them."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.sql import Executable

__all__ = ["write_behind"]


def write_behind(database_url: str, statement: Executable) -> None:
    """Run ``statement`` in a transaction of its own on the (file) database ``database_url``."""
    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(statement)
    finally:
        engine.dispose()
