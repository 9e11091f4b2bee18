"""``PostgresStore``: the store for a cluster of Kairos processes on one PostgreSQL database.

Due rows are claimed with ``FOR UPDATE SKIP LOCKED``, so nodes never wait on each other's claims
and never claim the same fire; the run ledger's unique key backs that up even if they raced.
Changes are announced with ``NOTIFY`` (delivered at commit) so every node hears of them at once.

Each node also holds a session advisory lock, its liveness lock, on a connection of its own. The
server drops it the moment the node's process dies (SIGKILL, OOM), so the others know at once
that its runs are no longer in flight and stop counting them toward ``max_instances``, instead
of skipping the job's fires until the node's lease runs out. Taking its runs over still waits
for the lease: a lock can also vanish with a connection cut while the process lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg
from sqlalchemy import Connection, Select, Table, create_engine, text
from sqlalchemy.engine import URL, make_url

from kairos.errors import StoreUnavailable
from kairos.store.base import ChangeFn
from kairos.store.sql import SqlStore
from kairos.store.sql.dialect import PostgresDialect

__all__ = ["PostgresStore"]

log = logging.getLogger("kairos.store.postgres")

# Any constant will do: it only has to be the same for every Kairos process.
_MIGRATION_LOCK = 0x6B6169726F73
_CHANNEL = "kairos_wake"
_DB_NOW_US = text("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")
_NOTIFY = text("SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[])) payload")
_RELISTEN_S = 1.0
_CONNECT_TIMEOUT_S = 10
# Liveness locks are (namespace, hash of the node id) pairs; the namespace keeps them apart from
# any other application's advisory locks on the database.
_LIVENESS_LOCKS = 0x4B41
_TAKE_LIVENESS_LOCK = (
    "SELECT pg_try_advisory_lock(%s, hashtext(%s) & 2147483647),"
    " (extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
)
# Nodes that beat while ``me`` held its liveness lock (so they had taken theirs: a node takes its
# lock before it beats) and whose lock is gone now. Judged only while ``me`` holds its own lock:
# after a server restart every lock is gone, and a node not yet back must not look crashed.
_CRASHED = text(
    """
    WITH locks AS (
        SELECT l.objid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
        WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :ns AND l.objsubid = 2
          AND d.datname = current_database()
    )
    SELECT n.id FROM kairos_nodes n
    WHERE n.id = ANY(CAST(:ids AS text[])) AND n.heartbeat_us > :since
      AND (hashtext(n.id) & 2147483647)::oid NOT IN (SELECT objid FROM locks)
      AND (hashtext(:me) & 2147483647)::oid IN (SELECT objid FROM locks)
    """
)


class PostgresStore(SqlStore):
    writer_threads = 4
    _dialect = PostgresDialect()

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        self._shown = parsed.set(drivername="postgresql").render_as_string()
        if "connect_timeout" not in parsed.query:  # else an unreachable host takes minutes
            parsed = parsed.update_query_dict({"connect_timeout": str(_CONNECT_TIMEOUT_S)})
        self._libpq_url = _libpq(parsed)
        engine = create_engine(parsed, pool_size=8, max_overflow=8, pool_pre_ping=True)
        super().__init__(engine, engine)
        self._listener: asyncio.Task[None] | None = None
        self._liveness: dict[str, tuple[psycopg.Connection[Any], int]] = {}
        """Per node id served here: the connection holding its liveness lock, and since when
        (database clock, microseconds)."""

    def _cannot_open(self, error: BaseException | None) -> str:
        reason = " ".join(str(error).split()).removeprefix("connection failed: ")
        return (
            f"cannot open the database {self._shown} ({reason}); check that PostgreSQL runs"
            " there and that the URL's host, port, user, password and database name are right"
        )

    def _lock_due(self, query: Select[Any], of: Table) -> Select[Any]:
        return query.with_for_update(skip_locked=True, of=of)

    def _db_now_us(self, conn: Connection) -> int:
        now: int = conn.execute(_DB_NOW_US).scalar_one()
        return now

    def _notify_many(self, conn: Connection, notices: list[tuple[int | None, str | None]]) -> None:
        # "<due_us> <job_id>", either part empty. Job ids never hold spaces.
        payloads = [f"{'' if due is None else due} {job_id or ''}" for due, job_id in notices]
        conn.execute(_NOTIFY, {"channel": _CHANNEL, "payloads": payloads})

    def _crashed(self, conn: Connection, node_ids: set[str], me: str) -> set[str]:
        held = self._liveness.get(me)
        if held is None:
            return set()
        params = {"ns": _LIVENESS_LOCKS, "ids": list(node_ids), "since": held[1], "me": me}
        return set(conn.execute(_CRASHED, params).scalars())

    async def heartbeat(
        self, node_id: str, hostname: str, tasks: frozenset[str] = frozenset()
    ) -> None:
        # The lock comes first: a node is never seen beating without it.
        await asyncio.to_thread(self._hold_liveness_lock, node_id)
        await super().heartbeat(node_id, hostname, tasks)

    async def deregister_node(self, node_id: str) -> None:
        await super().deregister_node(node_id)
        await asyncio.to_thread(self._release_liveness_lock, node_id)

    def _hold_liveness_lock(self, node_id: str) -> None:
        held = self._liveness.get(node_id)
        if held is not None:
            try:
                held[0].execute("SELECT 1")
                return
            except psycopg.Error:
                self._release_liveness_lock(node_id)  # lost with its connection: take it again
        try:
            conn = psycopg.connect(self._libpq_url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"the database is unavailable: {exc}") from exc
        try:
            row = conn.execute(_TAKE_LIVENESS_LOCK, (_LIVENESS_LOCKS, node_id)).fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise StoreUnavailable(f"could not take the node's liveness lock: {exc}") from exc
        assert row is not None
        taken, now_us = row
        if not taken:
            conn.close()
            raise StoreUnavailable(f"another process holds the liveness lock of node {node_id}")
        self._liveness[node_id] = (conn, now_us)

    def _release_liveness_lock(self, node_id: str) -> None:
        held = self._liveness.pop(node_id, None)
        if held is not None:
            with contextlib.suppress(psycopg.Error):
                held[0].close()

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
        for node_id in list(self._liveness):
            await asyncio.to_thread(self._release_liveness_lock, node_id)
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
