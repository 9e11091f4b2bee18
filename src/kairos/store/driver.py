"""``DriverStatement``: a hot statement run straight on SQLite's own cursor, its rows plain tuples.

SQLAlchemy's execution path (compiled-cache lookup, parameter processing, result objects)
costs several times what SQLite takes to run a short statement: for one job's ``PUT``, three
quarters of its write transaction. The few statements every job change runs are compiled once
per set of parameters and handed to the driver directly, in the transaction SQLAlchemy opened,
their errors raised as SQLAlchemy's. Other databases run them through SQLAlchemy as usual: over
a network, its overhead is not what counts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import UpdateBase

__all__ = ["DriverStatement"]


class DriverStatement:
    def __init__(self, statement: UpdateBase | Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, ...], tuple[str, tuple[str, ...], dict[str, Any]]] = {}

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Run once with ``params``; return the rows it returns (a query's, or ``RETURNING``),
        if any."""
        if conn.dialect.name != "sqlite":
            result = conn.execute(self.statement, dict(params))
            return result.all() if result.returns_rows else []
        sql, names, fixed = self._sql(conn, params)
        if fixed:
            params = {**fixed, **params}
        args = tuple(params[name] for name in names)
        try:
            return _driver(conn).execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, args, exc, sqlite3.Error) from exc

    def execute_each(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]]
    ) -> list[Sequence[Any]]:
        """Run once per row (rows may differ in keys); return every row they return
        (``RETURNING``). On SQLite one driver call per row: SQLAlchemy's batched form of a
        ``RETURNING`` insert costs several times what SQLite does for it. Elsewhere one batch
        through SQLAlchemy, one round trip."""
        if conn.dialect.name == "sqlite":
            return [returned for row in rows for returned in self.execute(conn, row)]
        if not rows:
            return []
        return list(conn.execute(self.statement, [dict(row) for row in rows]).all())

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row; every row has the same keys."""
        if not rows:
            return
        if conn.dialect.name != "sqlite":
            conn.execute(self.statement, [dict(row) for row in rows])
            return
        sql, names, fixed = self._sql(conn, rows[0])
        if fixed:
            rows = [{**fixed, **row} for row in rows]
        args = [tuple(row[name] for name in names) for row in rows]
        try:
            _driver(conn).executemany(sql, args)
        except sqlite3.Error as exc:
            raise DBAPIError.instance(sql, args, exc, sqlite3.Error) from exc

    def _sql(
        self, conn: Connection, params: Mapping[str, Any]
    ) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        """The SQL for these parameter names, its positional parameters' names, and the values
        of those the statement fixes itself (as SQLite's ``LIMIT ? OFFSET ?`` does its offset)."""
        keys = tuple(params)
        found = self._compiled.get(keys)
        if found is None:
            compiled = self.statement.compile(dialect=conn.dialect, column_keys=list(keys))
            names = tuple(compiled.positiontup or ())
            fixed = {name: compiled.params[name] for name in names if name not in params}
            found = self._compiled[keys] = (compiled.string, names, fixed)
        return found


def _driver(conn: Connection) -> sqlite3.Connection:
    driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
    return driver
