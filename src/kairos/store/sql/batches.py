"""Statements of many rows at once (``RowsStatement``), run as each database does it cheapest.

Row by row on SQLite, where a statement costs no round trip (``EachRow``, ``ReadThenUpdate``).
On a server, one statement taking the rows as one JSON document (``JsonRows``: read by
``json_to_recordset`` on PostgreSQL, ``JSON_TABLE`` on MariaDB): a single parameter, made in one
C call (the drivers convert each item of a list parameter, or each value of many rows, in
Python), and SQL, with the plan the server keeps for it, that does not depend on how many rows
there are. ``SqlDialect`` and its subclasses choose among them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    String,
    Table,
    Text,
    bindparam,
    cast,
    column,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.sql import FromClause, Select
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeEngine

from kairos.store.driver import DriverStatement

__all__ = [
    "EachRow",
    "JsonRows",
    "JsonRowsUpdate",
    "ReadThenUpdate",
    "RowsStatement",
    "json_records",
    "json_table",
]


class RowsStatement(Protocol):
    """A statement built once, run with many rows at once (see the module's docstring)."""

    def run(
        self,
        conn: Connection,
        rows: Sequence[dict[str, Any]],
        params: Mapping[str, Any] | None = None,
    ) -> Sequence[Sequence[Any]]:
        """Run with ``rows`` (each with the same keys) and ``params`` (the statement's other
        parameters); return the rows it returns, if any, in no particular order."""
        ...


class EachRow:
    """A statement run once per row, in one driver call where the driver can."""

    def __init__(self, statement: UpdateBase) -> None:
        self._statement = DriverStatement(statement)

    def run(
        self,
        conn: Connection,
        rows: Sequence[dict[str, Any]],
        params: Mapping[str, Any] | None = None,
    ) -> Sequence[Sequence[Any]]:
        if params:
            rows = [{**row, **params} for row in rows]
        self._statement.executemany(conn, rows)
        return []


class ReadThenUpdate:
    """``SqlDialect.update_rows``: the rows that meet the condition are read (and locked, where
    another transaction may write meanwhile; SQLite has one writer), then updated, one
    statement per row in one driver call (the cheapest way on SQLite, where a statement costs
    no round trip)."""

    def __init__(
        self,
        table: Table,
        set_: Sequence[str],
        where: ColumnElement[bool],
        returning: Sequence[Column[Any]],
    ) -> None:
        (key,) = table.primary_key.columns
        self._key = f"b_{key.name}"
        chosen = key.in_(bindparam("b_keys", expanding=True))
        self._read = DriverStatement(select(*returning).where(chosen, where).with_for_update())
        self._update = EachRow(
            update(table)
            .where(key == bindparam(self._key), where)
            .values({name: bindparam(f"b_{name}") for name in set_})
        )

    def run(
        self,
        conn: Connection,
        rows: Sequence[dict[str, Any]],
        params: Mapping[str, Any] | None = None,
    ) -> Sequence[Sequence[Any]]:
        if not rows:
            return []
        chosen = {"b_keys": [row[self._key] for row in rows], **(params or {})}
        held = self._read.execute(conn, chosen)
        if held:  # the rows not held are left alone by ``where``
            self._update.run(conn, rows, params)
        return held


class JsonRows:
    """A statement taking its rows as one JSON document, the parameter ``b_rows``: an array of
    objects, each row's values by its keys."""

    def __init__(self, statement: UpdateBase | Select[Any]) -> None:
        self._statement = DriverStatement(statement)

    def run(
        self,
        conn: Connection,
        rows: Sequence[dict[str, Any]],
        params: Mapping[str, Any] | None = None,
    ) -> Sequence[Sequence[Any]]:
        if not rows:
            return []
        return self._statement.execute(conn, {"b_rows": json.dumps(rows), **(params or {})})


def json_records(table: Table, keys: Mapping[str, str]) -> FromClause:
    """The rows of ``b_rows`` (see ``JsonRows``) on PostgreSQL: each key of ``keys`` a column,
    of the type of the column of ``table`` it names."""
    document = cast(bindparam("b_rows", type_=Text), postgresql.JSON)
    columns = (column(key, _plain(table.c[name].type)) for key, name in keys.items())
    return (
        func.json_to_recordset(document)
        .table_valued(*columns)
        .render_derived(name="v", with_types=True)
    )


def _plain(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    """``type_`` without its collation (a collation applies to a table's column, not here)."""
    return String(type_.length) if isinstance(type_, String) else type_


class JsonRowsUpdate:
    """``MariaDbDialect.update_rows``: the rows go as one JSON document (see ``JsonRows``),
    read by ``JSON_TABLE``. MariaDB's ``UPDATE`` returns no rows: those that meet the
    condition are locked and read first, then updated."""

    def __init__(
        self,
        table: Table,
        set_: Sequence[str],
        where: ColumnElement[bool],
        returning: Sequence[Column[Any]],
    ) -> None:
        (key,) = table.primary_key.columns
        chosen = json_table(table, {f"b_{key.name}": key.name})
        self._lock = JsonRows(
            select(*returning).where(key == chosen.c[f"b_{key.name}"], where).with_for_update()
        )
        rows = json_table(table, {f"b_{name}": name for name in (key.name, *set_)})
        self._update = JsonRows(
            update(table)
            .where(key == rows.c[f"b_{key.name}"], where)
            .values({name: rows.c[f"b_{name}"] for name in set_})
        )

    def run(
        self,
        conn: Connection,
        rows: Sequence[dict[str, Any]],
        params: Mapping[str, Any] | None = None,
    ) -> Sequence[Sequence[Any]]:
        held = self._lock.run(conn, rows, params)
        if held:
            self._update.run(conn, rows, params)
        return held


def json_table(table: Table, keys: Mapping[str, str]) -> FromClause:
    """The rows of ``b_rows`` (see ``JsonRows``) on MariaDB: as ``json_records``."""
    types = mysql.dialect().type_compiler_instance
    columns = ", ".join(
        f"{key} {types.process(table.c[name].type)} PATH '$.{key}'" for key, name in keys.items()
    )
    rows = text(f"SELECT * FROM JSON_TABLE(:b_rows, '$[*]' COLUMNS ({columns})) AS j")
    typed = (column(key, table.c[name].type) for key, name in keys.items())
    return rows.columns(*typed).subquery("v")
