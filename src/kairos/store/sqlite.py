"""``SQLiteStore``: the embedded default, one file (or memory) and nothing to install."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from kairos.errors import StoreUnavailable
from kairos.store.claims import ClaimPolicy
from kairos.store.liveness import NodeLocks
from kairos.store.sql import SqlStore
from kairos.store.sql.dialect import SqlDialect

__all__ = ["SQLiteStore"]

_WAL_SWITCH_TIMEOUT_S = 30


class SQLiteStore(SqlStore):
    """SQLite in WAL mode: readers never wait for the writer, and a SIGKILLed process loses no
    committed transaction (``synchronous=NORMAL`` trades durability only on power loss).

    ``sqlite://`` or ``sqlite:///:memory:`` keeps everything in memory, for tests and trials.

    A file may be shared by several processes on one machine (the workers of one web server):
    every write takes the database's one write lock (``BEGIN IMMEDIATE``), so a fire is claimed
    by one of them only. Each node holds a lock file beside the database (``NodeLocks``), so
    the runs of a process that dies are taken over as soon as a live one looks, with no lease to
    wait for. SQLite tells no other process of a change, so the others learn of it when they
    next claim: a change made within the claim-ahead window (``KAIROS_CLAIM_AHEAD``, 50 ms)
    before a fire may not stop that fire in another process.
    """

    _dialect = SqlDialect(sqlite.insert)
    announces_changes = False

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._path: Path | None = None
        self._locks: NodeLocks | None = None
        if parsed.database in (None, "", ":memory:"):
            self.single_process = True
            engine = create_engine(
                "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
            _configure(engine, immediate=True)
            super().__init__(engine, engine, inline=(engine, engine))
            return
        self._path = Path(parsed.database).expanduser().absolute()
        self._locks = NodeLocks(self._path.with_name(f"{self._path.name}-nodes"))
        args = {"check_same_thread": False, "timeout": 30}
        writer = create_engine(parsed, pool_size=1, max_overflow=0, connect_args=args)
        reader = create_engine(parsed, pool_size=4, max_overflow=4, connect_args=args)
        _configure(writer, immediate=True)
        _configure(reader, immediate=False)
        # One connection each for the event loop's own short reads and writes (see SqlStore).
        now = {"check_same_thread": False, "timeout": 0}
        inline_reader = create_engine(parsed, pool_size=1, max_overflow=0, connect_args=now)
        inline_writer = create_engine(parsed, pool_size=1, max_overflow=0, connect_args=now)
        _configure(inline_reader, immediate=False, on_loop=True)
        _configure(inline_writer, immediate=True, on_loop=True)
        super().__init__(writer, reader, inline=(inline_reader, inline_writer))

    async def open(self) -> None:
        if self._path is not None:
            try:
                await asyncio.to_thread(self._path.parent.mkdir, parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot create the directory {self._path.parent} of the database"
                    f" {self._path.name} ({exc.strerror}); create it, or choose another place"
                    " for the database"
                ) from exc
        await super().open()

    async def close(self) -> None:
        await super().close()
        if self._locks is not None:
            self._locks.close()

    async def heartbeat(
        self, node_id: str, hostname: str, tasks: frozenset[str] = frozenset()
    ) -> None:
        # The lock comes first: a node is never seen beating without it.
        if self._locks is not None:
            self._locks.hold(node_id)
        await super().heartbeat(node_id, hostname, tasks)

    async def deregister_node(self, node_id: str) -> None:
        await super().deregister_node(node_id)
        if self._locks is not None:
            self._locks.release(node_id)

    async def take_over(self, lease_us: int, *, retries: int, policy: ClaimPolicy) -> list[str]:
        dead = await super().take_over(lease_us, retries=retries, policy=policy)
        if self._locks is not None:
            self._locks.forget(dead)
        return dead

    def _gone(self, conn: Connection, node_ids: set[str]) -> set[str]:
        return set() if self._locks is None else self._locks.gone(node_ids)

    def _crashed(self, conn: Connection, node_ids: set[str], me: str) -> set[str]:
        return self._gone(conn, node_ids)

    def _cannot_open(self, error: BaseException | None) -> str:
        where = "in memory" if self._path is None else str(self._path)
        if type(error) is sqlite3.DatabaseError:  # "malformed", "not a database"
            return (
                f"the database {where} is corrupt, or not a SQLite database ({error}); restore"
                " it from a backup, or move it away to start with an empty one"
            )
        return (
            f"cannot open the database {where} ({error}); check that this process may read and"
            " write it and its directory"
        )


def _configure(engine: Engine, *, immediate: bool, on_loop: bool = False) -> None:
    """Take transaction control from the sqlite3 module so writes start with BEGIN IMMEDIATE:
    a deferred write transaction can fail with SQLITE_BUSY half-way instead of waiting.
    ``on_loop``: a connection the event loop uses, which must never wait: no busy timeout, no
    checkpoints (the writer thread's commits make them), and no switch to WAL (``open`` made
    it through the writer, before any such connection)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if on_loop:
            cursor.execute("PRAGMA busy_timeout=0")
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        else:
            cursor.execute("PRAGMA busy_timeout=30000")
            _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # The dialect's own hook, not a "begin" event: any engine event sends every statement
    # through SQLAlchemy's event dispatch, a large part of a short transaction's time (the
    # figure is in bench/RESULTS.md: here it would go stale).
    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"
    engine.dialect.do_begin = lambda dbapi_connection: dbapi_connection.execute(begin)  # type: ignore[method-assign]


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (it stays so). The switch needs the file to itself and SQLite does
    not wait for that, so processes opening a new file at once retry while another holds it."""
    deadline = time.monotonic() + _WAL_SWITCH_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
