"""Run history purges: each job's own limits, and the age limit of jobs without one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, select

from kairos.store.schema import jobs, runs
from kairos.store.sql import stats
from kairos.store.sql.backend import Backend
from kairos.store.sql.rows import FINAL

__all__ = ["purge_aged_runs", "purge_runs"]

# The ids to delete are read in a derived table (``FROM (SELECT ...)``) of their own: MariaDB
# refuses a subquery of the table a DELETE deletes from, or with a LIMIT, but for such a one.
# The other databases' planners flatten it.

# The id of a job's newest run beyond the ``keep`` it keeps: it and older finished ones go.
# Read from the (job_id, id) index alone.
_BEYOND_KEEP = (
    select(runs.c.id)
    .where(runs.c.job_id == bindparam("b_job"))
    .order_by(runs.c.id.desc())
    .offset(bindparam("b_keep"))
    .limit(1)
    .subquery()
)
_KEEP_BOUNDARY = select(_BEYOND_KEEP.c.id).scalar_subquery()
_TRIM_JOB_RUNS = runs.delete().where(
    runs.c.job_id == bindparam("b_job"), runs.c.id <= _KEEP_BOUNDARY, FINAL
)
_AGE_JOB_RUNS = runs.delete().where(
    runs.c.job_id == bindparam("b_job"), runs.c.finished_us < bindparam("b_older")
)
_AGED = (
    select(runs.c.id)
    .where(
        runs.c.id.between(bindparam("b_first"), bindparam("b_last")),
        runs.c.finished_us < bindparam("b_older"),
        ~exists().where(jobs.c.id == runs.c.job_id, jobs.c.history_max_age_us.is_not(None)),
    )
    .order_by(runs.c.id)
    .limit(bindparam("b_limit"))
    .subquery()
)
# What a purge reads of the runs it deletes, to take them off their jobs' counts.
_PURGED = (runs.c.job_id, runs.c.status)
_PURGE_AGED_RUNS = runs.delete().where(runs.c.id.in_(select(_AGED.c.id)))


def purge_runs(
    conn: Connection, *, db: Backend, limits: Sequence[tuple[str, int, int | None]]
) -> int:
    """``Store.purge_runs``: how many runs went."""
    purged: list[Sequence[Any]] = []
    for job_id, keep, older_than_us in limits:
        trim = {"b_job": job_id, "b_keep": keep}
        purged += db._dialect.delete_returning(conn, _TRIM_JOB_RUNS, _PURGED, trim)
        if older_than_us is not None:
            age = {"b_job": job_id, "b_older": older_than_us}
            purged += db._dialect.delete_returning(conn, _AGE_JOB_RUNS, _PURGED, age)
    stats.uncount(conn, purged)
    return len(purged)


def purge_aged_runs(
    conn: Connection,
    *,
    db: Backend,
    first_id: int,
    last_id: int,
    older_than_us: int,
    limit: int,
) -> tuple[int, int | None]:
    """``Store.purge_aged_runs``."""
    params = {"b_first": first_id, "b_last": last_id, "b_older": older_than_us, "b_limit": limit}
    purged = db._dialect.delete_returning(conn, _PURGE_AGED_RUNS, _PURGED, params)
    stats.uncount(conn, purged)
    return len(purged), conn.execute(select(func.max(runs.c.id))).scalar()
