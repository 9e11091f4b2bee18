"""Where jobs and runs live: ``open_store(url)`` picks the backend from the URL's scheme."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from kairos.store.base import (
    AccountStore,
    AuditLog,
    ChangeFn,
    JobQuery,
    JobStore,
    NodeInfo,
    NodeRegistry,
    RecordImport,
    RunLedger,
    SecretRecord,
    SecretStore,
    Store,
)
from kairos.store.claims import (
    Claim,
    ClaimPolicy,
    FinishedRun,
    FirePlan,
    PlannedRun,
    QueuedRun,
    Slots,
    StartedRun,
    Verdict,
)
from kairos.store.summaries import JobRunCounts, RunStats, RunSummary

__all__ = [
    "AccountStore",
    "AuditLog",
    "ChangeFn",
    "Claim",
    "ClaimPolicy",
    "FinishedRun",
    "FirePlan",
    "JobQuery",
    "JobRunCounts",
    "JobStore",
    "NodeInfo",
    "NodeRegistry",
    "PlannedRun",
    "QueuedRun",
    "RecordImport",
    "RunLedger",
    "RunStats",
    "RunSummary",
    "SecretRecord",
    "SecretStore",
    "Slots",
    "StartedRun",
    "Store",
    "Verdict",
    "store_for_url",
]


def store_for_url(url: str, *, redis_prefix: str | None = None) -> Store:
    """The store for a SQLAlchemy-style URL, ``redis://`` (``rediss://``) or ``memory://``;
    raise ``ValueError`` naming what is wrong. ``redis_prefix``: the Redis store's key prefix
    (default ``kairos:``)."""
    if url.split(":", 1)[0].lower() == "memory":
        if url.lower() != "memory://":
            raise ValueError(f"the memory store takes no path or options: {url!r} (try memory://)")
        from kairos.store.memory import MemoryStore

        return MemoryStore()
    if url.split(":", 1)[0].lower() in ("redis", "rediss"):
        from kairos.store.redis import RedisStore

        return RedisStore(url, redis_prefix) if redis_prefix is not None else RedisStore(url)
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
    except ArgumentError:
        raise ValueError(f"not a database URL: {url!r} (try sqlite:///kairos.db)") from None
    if backend == "sqlite":
        from kairos.store.sqlite import SQLiteStore

        return SQLiteStore(url)
    if backend in ("postgresql", "postgres"):
        from kairos.store.postgres import PostgresStore

        return PostgresStore(url)
    if backend in ("mysql", "mariadb"):
        from kairos.store.mariadb import MariaDbStore

        return MariaDbStore(url)
    raise ValueError(
        f"unsupported database {backend!r} in {parsed.render_as_string()!r}; supported: sqlite,"
        " postgresql, mariadb, redis, memory"
    )
