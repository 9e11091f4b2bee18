"""The run ledger's summaries (``RunStats``) for ``SqlStore``: written by the transactions that
end and purge runs, in the same transaction and one statement per table however many runs;
read for the overview off primary keys and indexes only."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, desc, func, select, update

from kairos.models import RunStatus
from kairos.store.driver import DriverStatement
from kairos.store.schema import IS_QUEUED, IS_RUNNING, IS_TRIPPED, job_stats, jobs, run_counts, runs
from kairos.store.sql.backend import Backend
from kairos.store.sql.dialect import SqlDialect
from kairos.store.summaries import (
    CALL_OUTCOMES,
    ENDED_STATUSES,
    FAILING_STATUSES,
    JobRunCounts,
    RunSummary,
    empty_counts,
    minute_of,
)

__all__ = [
    "Ended",
    "SqlStatStatements",
    "count_ended",
    "forget_last",
    "job_run_counts",
    "purge_run_counts",
    "run_summary",
    "uncount",
]

Ended = tuple[str, RunStatus, int | None]
"""A run that has just ended: its job, status and ``finished_us`` (None: it has none, as a run
skipped when its job was deleted; it then counts for its job only)."""

_COUNTS = tuple(status.value for status in ENDED_STATUSES)
# A job's row in ``count_ended`` before its first run is counted.
_NONE_YET: dict[str, Any] = {
    "last_status": None,
    "last_ended_us": None,
    **dict.fromkeys(_COUNTS, 0),
}
_UNCOUNT = DriverStatement(
    update(job_stats)
    .where(job_stats.c.job_id == bindparam("b_job"))
    .values({name: job_stats.c[name] - bindparam(f"b_{name}") for name in _COUNTS})
)
_FORGET_LAST = update(job_stats).values(last_status=None, last_ended_us=None)
_ENDED_SINCE = (
    select(run_counts.c.status, func.sum(run_counts.c.ended))
    .where(run_counts.c.minute_us >= bindparam("b_since"))
    .group_by(run_counts.c.status)
)
_COUNT_RUNNING = select(func.count()).select_from(runs).where(IS_RUNNING)
_COUNT_QUEUED = select(func.count()).select_from(runs).where(IS_QUEUED)
# Jobs deleted keep their row (their history stays) but not their last status. A run in flight
# when its job went may set it again as it ends: the jobs listed are joined with the jobs there
# are, to leave such a job out; the count is not (a join there would read a job per failing job),
# so it may count it until its id is used again.
_FAILING = job_stats.join(jobs, jobs.c.id == job_stats.c.job_id)
_TRIPPED = (jobs.c.paused.is_(True), IS_TRIPPED)


class SqlStatStatements:
    """The upserts a backend builds once, in its dialect."""

    def __init__(self, dialect: SqlDialect) -> None:
        self.add_run_counts = dialect.upsert_adding(
            run_counts, ["minute_us", "node_id", "status"], adding=["ended"]
        )
        self.add_job_stats = dialect.upsert_adding(
            job_stats, ["job_id"], adding=_COUNTS, newest_by="last_ended_us", newest=["last_status"]
        )


def count_ended(conn: Connection, db: Backend, node_id: str, ended: Iterable[Ended]) -> None:
    """Count runs that have just ended, in the transaction that ended them: per minute for
    ``node_id`` (the node recording them; '' for none), and per job. One statement per table."""
    minutes: Counter[tuple[int, str]] = Counter()
    per_job: dict[str, dict[str, Any]] = {}
    for job_id, status, finished_us in ended:
        row = per_job.get(job_id)
        if row is None:
            row = per_job[job_id] = {"job_id": job_id, **_NONE_YET}
        name = status.value
        row[name] += 1
        if finished_us is None:
            continue
        minutes[minute_of(finished_us), name] += 1
        if status in CALL_OUTCOMES and (
            row["last_ended_us"] is None or row["last_ended_us"] <= finished_us
        ):
            row["last_status"], row["last_ended_us"] = name, finished_us
    if not per_job:
        return
    statements = db._stats
    statements.add_run_counts.run(
        conn,
        [
            {"minute_us": minute, "node_id": node_id, "status": status, "ended": n}
            for (minute, status), n in sorted(minutes.items())
        ],
    )
    # One order for every transaction: no deadlock between two.
    statements.add_job_stats.run(conn, [per_job[job_id] for job_id in sorted(per_job)])


def uncount(conn: Connection, purged: Iterable[Sequence[Any]]) -> None:
    """Take runs that were deleted (each ``(job_id, status)``) off their jobs' counts, in the
    transaction that deleted them."""
    per_job: dict[str, Counter[str]] = {}
    for job_id, status in purged:
        if status in _COUNTS:
            per_job.setdefault(job_id, Counter())[status] += 1
    _UNCOUNT.executemany(
        conn,
        [
            {"b_job": job_id, **{f"b_{name}": per_job[job_id][name] for name in _COUNTS}}
            for job_id in sorted(per_job)
        ],
    )


def forget_last(conn: Connection, job_id: str) -> None:
    """A job was deleted: it has no last call any more (its counts stay with its history)."""
    conn.execute(_FORGET_LAST.where(job_stats.c.job_id == job_id))


def run_summary(conn: Connection, *, since_us: Sequence[int], limit: int) -> RunSummary:
    """``RunStats.run_summary``."""
    ended = []
    for at_us in since_us:
        counts = empty_counts()
        for status, n in conn.execute(_ENDED_SINCE, {"b_since": minute_of(at_us)}):
            counts[RunStatus(status)] = int(n)
        ended.append(counts)
    failing = 0
    newest: list[tuple[int, str]] = []
    for status in FAILING_STATUSES:
        is_status = job_stats.c.last_status == status.value
        count = select(func.count()).select_from(job_stats).where(is_status)
        failing += conn.execute(count).scalar_one()
        first = (
            select(job_stats.c.last_ended_us, job_stats.c.job_id)
            .select_from(_FAILING)
            .where(is_status)
            .order_by(desc(job_stats.c.last_ended_us))
            .limit(limit)
        )
        newest += [(at, job_id) for at, job_id in conn.execute(first)]
    newest.sort(reverse=True)
    tripped = conn.execute(select(func.count()).select_from(jobs).where(*_TRIPPED)).scalar_one()
    first_tripped = select(jobs.c.id).where(*_TRIPPED).order_by(jobs.c.id).limit(limit)
    return RunSummary(
        ended=ended,
        running=conn.execute(_COUNT_RUNNING).scalar_one(),
        queued=conn.execute(_COUNT_QUEUED).scalar_one(),
        failing=failing,
        failing_jobs=[job_id for _, job_id in newest[:limit]],
        tripped=tripped,
        tripped_jobs=list(conn.execute(first_tripped).scalars()),
    )


def job_run_counts(conn: Connection, *, job_ids: Sequence[str]) -> dict[str, JobRunCounts]:
    """``RunStats.job_run_counts``."""
    found = {job_id: JobRunCounts(empty_counts()) for job_id in job_ids}
    if not found:
        return found
    query = select(job_stats).where(job_stats.c.job_id.in_(list(found)))
    for row in conn.execute(query):
        counts = {status: int(row._mapping[status.value]) for status in ENDED_STATUSES}
        last = None if row.last_status is None else RunStatus(row.last_status)
        found[row.job_id] = JobRunCounts(counts, last, row.last_ended_us)
    return found


def purge_run_counts(conn: Connection, *, older_than_us: int) -> None:
    """``RunStats.purge_run_counts``."""
    conn.execute(run_counts.delete().where(run_counts.c.minute_us < minute_of(older_than_us)))
