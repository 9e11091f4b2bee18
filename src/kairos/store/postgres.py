"""``PostgresStore``: the store for a cluster of Kairos processes on one PostgreSQL database.

Due rows are claimed with ``FOR UPDATE SKIP LOCKED``, so nodes never wait on each other's claims
and never claim the same fire; the run ledger's unique key backs that up even if they raced.
Changes are announced with ``NOTIFY`` (delivered at commit) so every node hears of them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import Connection, Select, Table, create_engine, text
from sqlalchemy.engine import URL, make_url

from kairos.store.sql import SqlStore

__all__ = ["PostgresStore"]

log = logging.getLogger("kairos.store.postgres")

# Any constant will do: it only has to be the same for every Kairos process.
_MIGRATION_LOCK = 0x6B6169726F73
_CHANNEL = "kairos_wake"
_DB_NOW_US = text("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_RELISTEN_S = 1.0


class PostgresStore(SqlStore):
    writer_threads = 4

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        self._libpq_url = _libpq(parsed)
        engine = create_engine(parsed, pool_size=8, max_overflow=8, pool_pre_ping=True)
        super().__init__(engine, engine)
        self._listener: asyncio.Task[None] | None = None

    def _lock_due(self, query: Select[Any], of: Table) -> Select[Any]:
        return query.with_for_update(skip_locked=True, of=of)

    def _db_now_us(self, conn: Connection) -> int:
        now: int = conn.execute(_DB_NOW_US).scalar_one()
        return now

    def _notify(self, conn: Connection, due_us: int | None) -> None:
        payload = "" if due_us is None else str(due_us)
        conn.execute(_NOTIFY, {"channel": _CHANNEL, "payload": payload})

    def _before_migrations(self, conn: Connection) -> None:
        # Replicas starting together take turns; the first migrates, the rest find nothing to do.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})

    async def watch(self, on_change: Callable[[int | None], None]) -> None:
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(on_change, ready), name="kairos-listen")
        # Listening before the caller goes on, so no change made after this returns is missed.
        async with asyncio.timeout(10):
            await ready.wait()

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await super().close()

    async def _listen(self, on_change: Callable[[int | None], None], ready: asyncio.Event) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._libpq_url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {_CHANNEL}")
                    ready.set()
                    on_change(None)  # whatever happened while not listening: look now
                    async for note in conn.notifies():
                        on_change(int(note.payload) if note.payload else None)
            except psycopg.Error as exc:
                log.warning("lost the change feed, listening again in %.0f s: %s", _RELISTEN_S, exc)
            ready.set()
            await asyncio.sleep(_RELISTEN_S)


def _libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
