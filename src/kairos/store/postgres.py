"""``PostgresStore``: the store for a cluster of Kairos processes on one PostgreSQL database.

Due rows are claimed with ``FOR UPDATE SKIP LOCKED``, so nodes never wait on each other's claims
and never claim the same fire; the run ledger's unique key backs that up even if they raced.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, Table, create_engine, text
from sqlalchemy.engine import make_url

from kairos.store.sql import SqlStore

__all__ = ["PostgresStore"]

# Any constant will do: it only has to be the same for every Kairos process.
_MIGRATION_LOCK = 0x6B6169726F73
_DB_NOW_US = text("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint")


class PostgresStore(SqlStore):
    writer_threads = 4

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        engine = create_engine(parsed, pool_size=8, max_overflow=8, pool_pre_ping=True)
        super().__init__(engine, engine)

    def _lock_due(self, query: Select[Any], of: Table) -> Select[Any]:
        return query.with_for_update(skip_locked=True, of=of)

    def _db_now_us(self, conn: Connection) -> int:
        now: int = conn.execute(_DB_NOW_US).scalar_one()
        return now

    def _before_migrations(self, conn: Connection) -> None:
        # Replicas starting together take turns; the first migrates, the rest find nothing to do.
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
