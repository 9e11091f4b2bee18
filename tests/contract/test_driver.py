"""``DriverStatement`` on each driver it runs directly: one statement object serving a SQLite
file and PostgreSQL (or MariaDB) in one process, its rows, its parameter conversions (a list
among them) and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    insert,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from kairos.store.driver import DriverStatement
from kairos.store.mariadb import url_for_driver

_table = Table(
    "driver_check",
    MetaData(),
    Column("id", Integer, primary_key=True, autoincrement=False),  # ids given, 0 among them
    Column("name", String(20), nullable=False),
    Column("flag", Boolean, nullable=False),
)
_INSERT = DriverStatement(insert(_table).returning(_table.c.id, _table.c.flag))
_BY_NAME = DriverStatement(
    select(_table.c.id, _table.c.flag)
    .where(_table.c.name == bindparam("name"))
    .order_by(_table.c.id)
    .limit(bindparam("limit"))
)
_AMONG = DriverStatement(
    select(_table.c.id)
    .where(_table.c.id.in_(bindparam("ids", expanding=True)), _table.c.flag == bindparam("flag"))
    .order_by(_table.c.id)
)


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "mariadb":
        parsed = url_for_driver(parsed)
    engine = create_engine(parsed)
    _table.drop(engine, checkfirst=True)
    _table.create(engine)
    return engine


@pytest.mark.postgres
def test_one_statement_serves_sqlite_and_postgres_alike(tmp_path: Path, postgres_url: str) -> None:
    _serve_alike([_engine(f"sqlite:///{tmp_path}/d.db"), _engine(postgres_url)])


@pytest.mark.mariadb
def test_one_statement_serves_sqlite_and_mariadb_alike(tmp_path: Path, mariadb_url: str) -> None:
    engine = _engine(mariadb_url)
    assert engine.dialect.driver == "mysqldb"  # the default driver, run directly
    _serve_alike([_engine(f"sqlite:///{tmp_path}/d.db"), engine])


def _serve_alike(engines: list[Engine]) -> None:
    try:
        for round_ in range(2):  # the second round runs what the first compiled
            for engine in engines:
                with engine.begin() as conn:
                    first = 10 * round_
                    returned = _INSERT.execute(conn, {"id": first, "name": "a", "flag": True})
                    assert [tuple(row) for row in returned] == [(first, True)]
                    _INSERT.executemany(
                        conn,
                        [
                            {"id": first + 1, "name": "a", "flag": False},
                            {"id": first + 2, "name": "b", "flag": 1},
                        ],
                    )
                    rows = _BY_NAME.execute(conn, {"name": "a", "limit": 10})
                    expected = [(n, bool(n % 10 == 0)) for n in range(0, first + 1, 10)]
                    expected += [(n + 1, False) for n in range(0, first + 1, 10)]
                    assert sorted((row[0], bool(row[1])) for row in rows) == sorted(expected)
                    flags = _BY_NAME.execute(conn, {"name": "b", "limit": 1})
                    assert [bool(row[1]) for row in flags] == [True]  # 1 stored as true
                    # A list parameter: SQL of its own for each length.
                    for ids in ([first + 1], [first, first + 1, first + 2, 99], [first + 2]):
                        among = _AMONG.execute(conn, {"ids": ids, "flag": False})
                        assert [row[0] for row in among] == [n for n in ids if n == first + 1]
        for engine in engines:
            with pytest.raises(IntegrityError), engine.begin() as conn:
                _INSERT.execute(conn, {"id": 0, "name": "again", "flag": False})
    finally:
        for engine in engines:
            _table.drop(engine, checkfirst=True)
            engine.dispose()
