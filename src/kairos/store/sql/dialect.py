"""``SqlDialect``: the statements whose SQL differs from one database to another.

The shared code asks its backend's dialect for them, never which database it runs on. This one
speaks ``INSERT ... ON CONFLICT`` and ``RETURNING``, as SQLite and PostgreSQL both do; a
database that spells them otherwise brings a subclass, as MariaDB does here (``ON DUPLICATE KEY
UPDATE``, ``INSERT IGNORE``, no ``RETURNING`` on updates, deletes that choose their rows
first).

The statements of many rows at once are built as ``batches`` describes: row by row on SQLite,
as one statement taking the rows as one JSON document on PostgreSQL (``PostgresDialect``) and
MariaDB.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Row,
    Table,
    and_,
    case,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.sql.dml import Delete, Update, UpdateBase

from kairos.store.sql.batches import (
    EachRow,
    JsonRows,
    JsonRowsUpdate,
    ReadThenUpdate,
    RowsStatement,
    json_records,
    json_table,
)

__all__ = ["MariaDbDialect", "PostgresDialect", "SqlDialect"]


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

    def upsert_adding(
        self,
        table: Table,
        key: Sequence[str],
        *,
        adding: Sequence[str],
        newest_by: str | None = None,
        newest: Sequence[str] = (),
    ) -> RowsStatement:
        """An insert into ``table`` that, where a row with the same ``key`` exists, adds the
        values inserted to its ``adding`` columns, and gives its ``newest`` columns (and
        ``newest_by``) the values inserted if the ``newest_by`` inserted is not NULL and not
        older than the row's. Atomic, as ``upsert``. Its rows are keyed by column name, and no
        two of one run may share a ``key``."""
        add = self._insert(table)
        statement = add.on_conflict_do_update(
            index_elements=list(key),
            set_=dict(_adding(table, add.excluded, adding, newest_by, newest)),
        )
        return EachRow(statement)

    def update_rows(
        self,
        table: Table,
        *,
        set_: Sequence[str],
        where: ColumnElement[bool],
        returning: Sequence[Column[Any]],
    ) -> RowsStatement:
        """An update of rows of ``table`` by primary key, each row its own values of the
        columns ``set_``, of those rows only that meet ``where`` when it reaches them (fenced);
        it returns ``returning`` (columns it does not set) of each row it changed. Its rows are
        keyed ``b_<column>``: the key, and each of ``set_``."""
        return ReadThenUpdate(table, set_, where, returning)

    def insert_ignoring_duplicates(self, table: Table, key: Sequence[str]) -> Any:
        """An insert into ``table`` that skips the rows whose ``key`` exists already."""
        return self._insert(table).on_conflict_do_nothing(index_elements=list(key))

    def returning(self, statement: UpdateBase, *columns: ColumnElement[Any]) -> Any:
        """``statement`` made to return ``columns`` of each row it wrote (and not of rows it
        skipped)."""
        return statement.returning(*columns)

    def update_returning(
        self,
        conn: Connection,
        statement: Update,
        columns: Sequence[ColumnElement[Any]],
        params: Mapping[str, Any] | None = None,
    ) -> Sequence[Row[Any]]:
        """Run ``statement``; return ``columns`` of each row it changed, as they are now."""
        return conn.execute(statement.returning(*columns), dict(params or {})).all()

    def delete(
        self, conn: Connection, statement: Delete, params: Mapping[str, Any] | None = None
    ) -> int:
        """Run ``statement``; return how many rows it deleted."""
        deleted: int = conn.execute(statement, dict(params or {})).rowcount
        return deleted

    def delete_returning(
        self,
        conn: Connection,
        statement: Delete,
        columns: Sequence[ColumnElement[Any]],
        params: Mapping[str, Any] | None = None,
    ) -> Sequence[Row[Any]]:
        """Run ``statement``; return ``columns`` of each row it deleted."""
        return conn.execute(statement.returning(*columns), dict(params or {})).all()


class PostgresDialect(SqlDialect):
    """PostgreSQL's: a statement of many rows takes them as one JSON document,
    ``json_to_recordset`` turning it back into rows."""

    def __init__(self) -> None:
        super().__init__(postgresql.insert)

    def upsert_adding(
        self,
        table: Table,
        key: Sequence[str],
        *,
        adding: Sequence[str],
        newest_by: str | None = None,
        newest: Sequence[str] = (),
    ) -> RowsStatement:
        names = [c.name for c in table.columns]
        rows = json_records(table, {name: name for name in names})
        add = postgresql.insert(table).from_select(names, select(rows))
        statement = add.on_conflict_do_update(
            index_elements=list(key),
            set_=dict(_adding(table, add.excluded, adding, newest_by, newest)),
        )
        return JsonRows(statement)

    def update_rows(
        self,
        table: Table,
        *,
        set_: Sequence[str],
        where: ColumnElement[bool],
        returning: Sequence[Column[Any]],
    ) -> RowsStatement:
        (key,) = table.primary_key.columns
        rows = json_records(table, {f"b_{name}": name for name in (key.name, *set_)})
        # One statement: a row that a concurrent transaction changes (a cancel) is checked
        # against ``where`` again once its lock is released, and left alone if it no longer
        # meets it.
        statement = (
            update(table)
            .where(key == rows.c[f"b_{key.name}"], where)
            .values({name: rows.c[f"b_{name}"] for name in set_})
            .returning(*returning)
        )
        return JsonRows(statement)


class MariaDbDialect(SqlDialect):
    """MariaDB's: ``ON DUPLICATE KEY UPDATE`` and ``INSERT IGNORE``, and ``RETURNING`` on
    inserts only (10.5+), so an update that must return rows locks them first and reads them
    back after.

    ``ON DUPLICATE KEY UPDATE`` fires on a clash with any unique key of the table, not only
    ``key``: every table upserted here has no unique key but its primary key. ``INSERT IGNORE``
    also turns other errors of a row into warnings; the rows inserted so are Kairos's own,
    checked before they get here.

    A ``DELETE`` whose condition reads its own table (in a derived table, as MariaDB requires)
    scans the whole table for it: the rows are chosen by a ``SELECT`` first, which reads only
    what the condition needs, then deleted by key."""

    def __init__(self) -> None:
        super().__init__(mysql.insert)

    def upsert(
        self,
        table: Table,
        key: Sequence[str],
        *,
        replace: Sequence[str] = (),
        set_: Mapping[str, Any] | None = None,
    ) -> Any:
        add = mysql.insert(table)
        # MySQL evaluates the assignments in order, each seeing those before it: none of these
        # reads a column that another assigns.
        values = {name: add.inserted[name] for name in replace}
        return add.on_duplicate_key_update({**values, **(set_ or {})})

    def upsert_adding(
        self,
        table: Table,
        key: Sequence[str],
        *,
        adding: Sequence[str],
        newest_by: str | None = None,
        newest: Sequence[str] = (),
    ) -> RowsStatement:
        names = [c.name for c in table.columns]
        rows = json_table(table, {name: name for name in names})
        add = mysql.insert(table).from_select(names, select(rows))
        # In this order: the ``newest`` columns read the row's ``newest_by`` before it is set.
        statement = add.on_duplicate_key_update(
            _adding(table, add.inserted, adding, newest_by, newest)
        )
        return JsonRows(statement)

    def update_rows(
        self,
        table: Table,
        *,
        set_: Sequence[str],
        where: ColumnElement[bool],
        returning: Sequence[Column[Any]],
    ) -> RowsStatement:
        return JsonRowsUpdate(table, set_, where, returning)

    def insert_ignoring_duplicates(self, table: Table, key: Sequence[str]) -> Any:
        return mysql.insert(table).prefix_with("IGNORE")

    def update_returning(
        self,
        conn: Connection,
        statement: Update,
        columns: Sequence[ColumnElement[Any]],
        params: Mapping[str, Any] | None = None,
    ) -> Sequence[Row[Any]]:
        table = statement.table
        assert isinstance(table, Table)
        (key,) = table.primary_key.columns
        args = dict(params or {})
        # Locked, the rows still meet the statement's condition when it reaches them.
        chosen = select(key).where(statement.whereclause).with_for_update()  # type: ignore[arg-type]
        ids = list(conn.execute(chosen, args).scalars())
        if not ids:
            return []
        conn.execute(statement.where(key.in_(ids)), args)
        return conn.execute(select(*columns).where(key.in_(ids)).order_by(key)).all()

    def delete(
        self, conn: Connection, statement: Delete, params: Mapping[str, Any] | None = None
    ) -> int:
        return len(self.delete_returning(conn, statement, (), params))

    def delete_returning(
        self,
        conn: Connection,
        statement: Delete,
        columns: Sequence[ColumnElement[Any]],
        params: Mapping[str, Any] | None = None,
    ) -> Sequence[Row[Any]]:
        table = statement.table
        assert isinstance(table, Table)
        (key,) = table.primary_key.columns
        chosen = select(key, *columns).where(statement.whereclause).with_for_update()  # type: ignore[arg-type]
        rows = conn.execute(chosen, dict(params or {})).all()
        if rows:
            conn.execute(table.delete().where(key.in_([row[0] for row in rows])))
        return [row[1:] for row in rows]  # type: ignore[misc]


def _adding(
    table: Table,
    inserted: Any,
    adding: Sequence[str],
    newest_by: str | None,
    newest: Sequence[str],
) -> list[tuple[str, Any]]:
    """The assignments of ``SqlDialect.upsert_adding``, in the order they must be made;
    ``inserted``: the values being inserted, as the dialect names them."""
    pairs: list[tuple[str, Any]] = [(name, table.c[name] + inserted[name]) for name in adding]
    if newest_by is not None:
        mine, theirs = table.c[newest_by], inserted[newest_by]
        newer = and_(theirs.is_not(None), or_(mine.is_(None), theirs >= mine))
        for name in (*newest, newest_by):
            pairs.append((name, case((newer, inserted[name]), else_=table.c[name])))
    return pairs
