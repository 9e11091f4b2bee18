"""``DriverStatement``: a hot statement run straight on the driver's own cursor (SQLite's,
psycopg's or MySQLdb's), its rows plain tuples.

SQLAlchemy's execution path (compiled-cache lookup, parameter processing, result objects)
costs several times what SQLite takes to run a short statement, and a large part of a ``PUT``
on PostgreSQL too (the figures are in bench/RESULTS.md, which measures them: here they would
go stale). The few statements every fire and job change runs
are compiled once per set of parameters (and length of a list parameter, an expanding ``IN``)
and handed to the driver directly, in the transaction SQLAlchemy opened, their errors raised as
SQLAlchemy's. Other drivers run them through SQLAlchemy as usual.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Select
from sqlalchemy.sql.dml import UpdateBase

__all__ = ["DriverStatement"]

# The drivers run directly, by SQLAlchemy's name for them, and the base class of their errors.
_DIRECT: dict[str, type[Exception]] = {"pysqlite": sqlite3.Error, "psycopg": psycopg.Error}
try:  # MariaDB's default driver, installed with the ``mysql`` extra
    import MySQLdb

    _DIRECT["mysqldb"] = MySQLdb.Error
except ImportError:
    pass


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    pick: Callable[[Mapping[str, Any]], tuple[Any, ...]] | None
    """The parameters in order, for a driver that takes them by position (SQLite); None for
    one that takes them by name (psycopg)."""
    fixed: dict[str, Any]
    """Values the statement fixes itself (as SQLite's ``LIMIT ? OFFSET ?`` does its offset)."""
    processors: dict[str, Callable[[Any], Any]]
    """The conversions SQLAlchemy would make of some parameters (a boolean to what the
    database stores)."""
    expanded: tuple[tuple[str, tuple[str, ...]], ...]
    """Each list parameter (of an ``IN``), with the names of the parameters its items are."""

    def args(self, params: Mapping[str, Any]) -> tuple[Any, ...] | Mapping[str, Any]:
        values = params
        # Else no copy: this runs for every row of a claim.
        if self.fixed or self.processors or self.expanded:
            values = {**self.fixed, **params}
            for name, names in self.expanded:
                values.update(zip(names, values.pop(name), strict=True))
            for name, process in self.processors.items():
                values[name] = process(values[name])
        return values if self.pick is None else self.pick(values)


class DriverStatement:
    def __init__(self, statement: UpdateBase | Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...], tuple[int, ...]], _Compiled] = {}
        """By driver (a statement may serve stores of both kinds in one process), the
        parameters' names and the lengths of its list parameters (an expanding ``IN``)."""

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Run once with ``params``; return the rows it returns (a query's, or ``RETURNING``),
        if any."""
        error = _DIRECT.get(conn.dialect.driver)
        if error is None:
            result = conn.execute(self.statement, dict(params))
            return result.all() if result.returns_rows else []
        compiled = self._compile(conn, params)
        args = compiled.args(params)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, args)
            return cursor.fetchall() if cursor.description is not None else []
        except error as exc:
            raise DBAPIError.instance(compiled.sql, args, exc, error) from exc

    def execute_each(
        self, conn: Connection, rows: Sequence[Mapping[str, Any]]
    ) -> list[Sequence[Any]]:
        """Run once per row (rows may differ in keys); return every row they return
        (``RETURNING``). On SQLite one driver call per row: SQLAlchemy's batched form of a
        ``RETURNING`` insert costs several times what SQLite does for it. Elsewhere one batch
        through SQLAlchemy, one round trip."""
        if not rows:
            return []
        if conn.dialect.driver != "pysqlite":
            return list(conn.execute(self.statement, [dict(row) for row in rows]).all())
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        returned: list[Sequence[Any]] = []
        for row in rows:
            compiled = self._compile(conn, row)
            args = compiled.args(row)
            try:
                cursor.execute(compiled.sql, args)
            except sqlite3.Error as exc:
                raise DBAPIError.instance(compiled.sql, args, exc, sqlite3.Error) from exc
            returned += cursor.fetchall()
        return returned

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per row; every row has the same keys."""
        if not rows:
            return
        error = _DIRECT.get(conn.dialect.driver)
        if error is None:
            conn.execute(self.statement, [dict(row) for row in rows])
            return
        compiled = self._compile(conn, rows[0])
        args = [compiled.args(row) for row in rows]
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(compiled.sql, args)
        except error as exc:
            raise DBAPIError.instance(compiled.sql, args, exc, error) from exc

    def _compile(self, conn: Connection, params: Mapping[str, Any]) -> _Compiled:
        dialect = conn.dialect
        keys = tuple(params)
        sizes = tuple(len(value) for value in params.values() if type(value) is list)
        found = self._compiled.get((dialect.driver, keys, sizes))
        if found is None:
            compiled = self.statement.compile(dialect=dialect, column_keys=list(keys))
            processors: dict[str, Callable[[Any], Any]] = {}
            for name, bind in compiled.binds.items():
                process = bind.type.bind_processor(dialect)
                if process is not None and not bind.expanding:
                    processors[name] = process
            sql, positions = compiled.string, tuple(compiled.positiontup or ())
            expanded: tuple[tuple[str, tuple[str, ...]], ...] = ()
            if sizes:  # the SQL for lists of these lengths
                state = compiled.construct_expanded_state(dict(params))
                sql, positions = state.statement, tuple(state.positiontup or ())
                expanded = tuple((k, tuple(v)) for k, v in state.parameter_expansion.items())
                processors.update(state.processors)
            found = self._compiled[dialect.driver, keys, sizes] = _Compiled(
                sql,
                _picker(positions),
                {name: value for name, value in compiled.params.items() if name not in params},
                processors,
                expanded,
            )
        return found


def _picker(positions: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]] | None:
    """What takes the parameters named ``positions`` out of a mapping, in that order (in one C
    call: this too runs for every row of a claim)."""
    if not positions:
        return None
    pick = itemgetter(*positions)
    return pick if len(positions) > 1 else lambda values: (pick(values),)
