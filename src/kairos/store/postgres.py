"""``PostgresStore``: the store for a cluster of Kairos processes on one PostgreSQL database.

Due rows are claimed with ``FOR UPDATE SKIP LOCKED``, so nodes never wait on each other's claims
and never claim the same fire; the run ledger's unique key backs that up even if they raced.
Changes are announced with ``NOTIFY`` (delivered at commit) so every node hears of them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg
from sqlalchemy import Connection, Select, Table, create_engine, text
from sqlalchemy.engine import URL, make_url

from kairos.store.base import ChangeFn
from kairos.store.sql import SqlStore

__all__ = ["PostgresStore"]

log = logging.getLogger("kairos.store.postgres")

# Any constant will do: it only has to be the same for every Kairos process.
_MIGRATION_LOCK = 0x6B6169726F73
_CHANNEL = "kairos_wake"
_DB_NOW_US = text("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
_NOTIFY = text("SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[])) payload")
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

    def _notify_many(self, conn: Connection, notices: list[tuple[int | None, str | None]]) -> None:
        # "<due_us> <job_id>", either part empty. Job ids never hold spaces.
        payloads = [f"{'' if due is None else due} {job_id or ''}" for due, job_id in notices]
        conn.execute(_NOTIFY, {"channel": _CHANNEL, "payloads": payloads})

    def _before_migrations(self, conn: Connection) -> None:
        # Replicas starting together take turns; the first migrates, the rest find nothing to do.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})

    async def watch(self, on_change: ChangeFn) -> None:
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

    async def _listen(self, on_change: ChangeFn, ready: asyncio.Event) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._libpq_url, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {_CHANNEL}")
                    ready.set()
                    on_change(None, None)  # whatever happened while not listening: look now
                    async for note in conn.notifies():
                        due, _, job_id = note.payload.partition(" ")
                        on_change(int(due) if due else None, job_id or None)
            except psycopg.Error as exc:
                log.warning("lost the change feed, listening again in %.0f s: %s", _RELISTEN_S, exc)
            ready.set()
            await asyncio.sleep(_RELISTEN_S)


def _libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)
