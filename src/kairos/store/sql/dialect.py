"""``SqlDialect``: the statements whose SQL differs from one database to another.

The shared code asks its backend's dialect for them, never which database it runs on. This one
speaks ``INSERT ... ON CONFLICT`` and ``RETURNING``, as SQLite and PostgreSQL both do; a
database that spells them otherwise (MySQL and MariaDB: ``ON DUPLICATE KEY UPDATE``, ``INSERT
IGNORE``, no ``RETURNING`` on updates) brings a subclass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table
from sqlalchemy.sql.dml import UpdateBase

__all__ = ["SqlDialect"]


class SqlDialect:
    """``insert``: the dialect's own ``insert`` construct, the one with ``ON CONFLICT``."""

    def __init__(self, insert: Callable[[Table], Any]) -> None:
        self._insert = insert

    def upsert(
        self,
        table: Table,
        key: Sequence[str],
        *,
        replace: Sequence[str] = (),
        set_: Mapping[str, Any] | None = None,
    ) -> Any:
        """An insert into ``table`` that, where a row with the same ``key`` exists, updates it
        instead: its ``replace`` columns take the values being inserted, and ``set_`` gives
        other columns expressions of their own. Atomic, even when two nodes insert one key."""
        add = self._insert(table)
        values = {name: add.excluded[name] for name in replace}
        return add.on_conflict_do_update(index_elements=list(key), set_={**values, **(set_ or {})})

    def insert_ignoring_duplicates(self, table: Table, key: Sequence[str]) -> Any:
        """An insert into ``table`` that skips the rows whose ``key`` exists already."""
        return self._insert(table).on_conflict_do_nothing(index_elements=list(key))

    def returning(self, statement: UpdateBase, *columns: ColumnElement[Any]) -> Any:
        """``statement`` made to return ``columns`` of each row it wrote (and not of rows it
        skipped)."""
        return statement.returning(*columns)
