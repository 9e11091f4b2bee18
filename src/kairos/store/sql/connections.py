"""How ``SqlStore`` runs a transaction: in a worker thread (one pool for writes, one for reads),
or for a short one, inline on the event loop when the backend allows it and nothing would wait."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import psycopg
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from kairos.errors import StoreUnavailable

__all__ = ["SqlConnections", "one_line"]

T = TypeVar("T")

# One short write in this many goes to the writer thread anyway (see ``SqlConnections._write``).
_INLINE_WRITES_PER_TRIP = 100
# A transaction the database chose as a deadlock's victim is run again, this many times at most,
# after a random pause of up to this long (growing with each attempt) so the two part ways.
_RETRIES = 8
_RETRY_PAUSE_S = 0.005
_POSTGRES_CORRUPT = (psycopg.errors.DataCorrupted, psycopg.errors.IndexCorrupted)


class SqlConnections:
    """One SQLAlchemy engine for writes and one for reads (they may be the same).

    Statements run in worker threads, off the event loop. A backend whose database lives in
    this process may also pass ``inline`` engines (for reads, for writes): short operations (a
    row by its key, one job's change) then run on the event loop itself while the writer thread
    is idle, as handing work to a thread and back costs more CPU than such a statement (figures
    in bench/RESULTS.md, which measures them, not here, where they would go stale).
    An inline engine must never wait (no busy timeout) and never checkpoint: what would have to
    wait goes to the threads instead, and the writer thread's own commits checkpoint.
    """

    writer_threads = 1

    def _must_retry(self, error: DBAPIError) -> bool:
        """Whether ``error`` rolled the transaction back only to break a deadlock or a lock wait,
        so that running it again is right: where the database resolves them that way (InnoDB),
        under concurrent claims; never the case for the others."""
        return False

    def __init__(
        self, writer: Engine, reader: Engine, inline: tuple[Engine, Engine] | None = None
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._inline = inline
        self._inline_connections: dict[Engine, Connection] = {}
        self._in_write_pool = 0
        """Operations handed to the writer thread and not yet done: while any is, a write must
        queue behind it."""
        self._inline_writes = 0
        self._write_pool = ThreadPoolExecutor(self.writer_threads, thread_name_prefix="kairos-w")
        self._read_pool = (
            self._write_pool
            if reader is writer and self.writer_threads == 1
            else ThreadPoolExecutor(4, thread_name_prefix="kairos-r")
        )

    async def _write(self, fn: Callable[[Connection], T], *, short: bool = False) -> T:
        """``fn`` in a write transaction; ``short``: it touches a few rows by key."""
        conn = self._inline_connection(write=True) if short else None
        if conn is not None:
            self._inline_writes += 1
            with contextlib.suppress(_WouldWait):
                return _inline_transaction(conn, fn)
        self._inline_writes = 0
        return await self._run(self._write_pool, self._writer, fn)

    async def _read(self, fn: Callable[[Connection], T], *, short: bool = False) -> T:
        """``fn`` in a read transaction; ``short``: it reads a few rows by key."""
        conn = self._inline_connection(write=False) if short else None
        if conn is not None:
            with contextlib.suppress(_WouldWait):
                return _inline_transaction(conn, fn)
        return await self._run(self._read_pool, self._reader, fn)

    def _inline_connection(self, *, write: bool) -> Connection | None:
        """The connection for a short operation on the event loop, if it may run there now."""
        if self._inline is None:
            return None
        # A write must not overtake one queued for the writer thread; every so many, a short
        # write goes to the thread anyway, as its commit checkpoints the WAL.
        if write and (self._in_write_pool or self._inline_writes >= _INLINE_WRITES_PER_TRIP):
            return None
        # A read shares the writer's connection when there is only one (in memory).
        if not write and self._read_pool is self._write_pool and self._in_write_pool:
            return None
        engine = self._inline[1] if write else self._inline[0]
        # Kept open: checking a connection out of the pool and back costs as much as the
        # transaction. Only the event loop's thread uses these, one operation at a time.
        conn = self._inline_connections.get(engine)
        if conn is None:
            conn = self._inline_connections[engine] = engine.connect()
        return conn

    async def _run(
        self, pool: ThreadPoolExecutor, engine: Engine, fn: Callable[[Connection], T]
    ) -> T:
        loop = asyncio.get_running_loop()
        counted = pool is self._write_pool
        self._in_write_pool += counted
        try:
            return await loop.run_in_executor(pool, self._in_transaction, engine, fn)
        except OperationalError as exc:
            raise StoreUnavailable(f"the database is unavailable: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(f"the database connection was lost: {exc.orig}") from exc
            if _corrupt(exc):
                raise StoreUnavailable(f"the database is corrupt: {exc.orig}") from exc
            raise
        finally:
            self._in_write_pool -= counted

    def _in_transaction(self, engine: Engine, fn: Callable[[Connection], T]) -> T:
        """``fn`` in a transaction, run again (a few times) if the database rolled it back to
        break a deadlock: whatever it wrote went with it, so running it again is safe."""
        attempt = 1
        while True:
            try:
                with engine.begin() as conn:
                    return fn(conn)
            except DBAPIError as exc:
                if attempt == _RETRIES or not self._must_retry(exc):
                    raise
            time.sleep(random.uniform(0, _RETRY_PAUSE_S * attempt))
            attempt += 1

    def _close_connections(self) -> None:
        """Wait for the threads' work, then close every connection and engine."""
        self._write_pool.shutdown(wait=True)
        if self._read_pool is not self._write_pool:
            self._read_pool.shutdown(wait=True)
        for conn in self._inline_connections.values():
            conn.close()
        for engine in {self._writer, self._reader, *(self._inline or ())}:
            engine.dispose()


class _WouldWait(Exception):
    """The database would have had the event loop wait (another process holds its lock), or
    failed in a way that the threads report (as ``StoreUnavailable``)."""


def _inline_transaction(conn: Connection, fn: Callable[[Connection], T]) -> T:
    """``fn`` in a transaction on a connection that never waits. On ``_WouldWait`` the
    transaction was rolled back whole, so running ``fn`` again in a thread is safe."""
    try:
        with conn.begin():
            return fn(conn)
    except DBAPIError as exc:
        if isinstance(exc, OperationalError) or _corrupt(exc):
            raise _WouldWait from exc
        raise


def _corrupt(exc: DBAPIError) -> bool:
    """The database's own files are damaged: SQLite's "malformed" and "not a database" (raised
    as its base error class), PostgreSQL's data or index corruption."""
    return type(exc.orig) is sqlite3.DatabaseError or isinstance(exc.orig, _POSTGRES_CORRUPT)


def one_line(error: BaseException | None) -> str:
    """A driver's message on one line (PostgreSQL's span several)."""
    return " ".join(str(error).split())
