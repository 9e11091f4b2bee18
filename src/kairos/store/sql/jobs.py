"""The jobs' transactions and queries: create, replace, change, list, count and delete jobs,
with their tags and the audit records of those changes."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, func, insert, select, update

from kairos.errors import Conflict, JobNotFound
from kairos.identity import Actor
from kairos.models import JobRecord, JobState, RunStatus
from kairos.store.base import JobQuery
from kairos.store.driver import DriverStatement
from kairos.store.schema import IS_QUEUED, job_tags, jobs, runs
from kairos.store.sql import stats
from kairos.store.sql.accounts import audit_row, write_audit
from kairos.store.sql.backend import Backend
from kairos.store.sql.rows import FINAL, JOB_COLUMNS, job_from_row, job_values

__all__ = [
    "COUNT_BY_TASK",
    "COUNT_JOBS",
    "JOB_BY_ID",
    "REPLACED_ON_UPSERT",
    "apply_jobs",
    "counts",
    "delete_job",
    "insert_job",
    "job_filter",
    "list_jobs",
    "read_page",
    "set_tags",
    "update_job",
    "upsert_jobs",
]

_DELETED = "the job was deleted before this run started"
# A batch this large is audited without each job's definition (only who created or replaced it).
_AUDIT_DEFINITIONS_UP_TO = 100
# Built once: reads by key are on the hot path, and building one costs more than running it.
JOB_BY_ID = select(*JOB_COLUMNS).where(jobs.c.id == bindparam("b_id"))
_DROP_TAGS = DriverStatement(job_tags.delete().where(job_tags.c.job_id == bindparam("b_id")))
_ADD_TAGS = DriverStatement(insert(job_tags))
_STATE = {
    JobState.SCHEDULED: jobs.c.paused.is_(False) & jobs.c.next_run_us.is_not(None),
    JobState.PAUSED: jobs.c.paused.is_(True) & jobs.c.pause_reason.is_(None),
    JobState.TRIPPED: jobs.c.pause_reason.is_not(None),
    JobState.FINISHED: jobs.c.paused.is_(False) & jobs.c.next_run_us.is_(None),
}
_TRIPPED = jobs.c.pause_reason.is_not(None)
_FINISHED = jobs.c.next_run_us.is_(None)
COUNT_JOBS = select(jobs.c.paused, _TRIPPED, _FINISHED, func.count()).group_by(
    jobs.c.paused, _TRIPPED, _FINISHED
)
COUNT_BY_TASK = (
    select(jobs.c.task, func.count()).where(jobs.c.task.is_not(None)).group_by(jobs.c.task)
)
# The columns an upsert overwrites in a job that exists.
REPLACED_ON_UPSERT = (
    "spec",
    "paused",
    "next_fire_us",
    "next_run_us",
    "updated_us",
    "failures",
    "pause_reason",
    "history_max_age_us",
    "task",
)


def insert_job(conn: Connection, *, db: Backend, job: JobRecord, by: Actor | None) -> None:
    values = job_values(job)
    conn.execute(insert(jobs).values(values))
    set_tags(conn, [job])
    db._notify(conn, job.next_run_us, job.id)
    if by is not None:
        detail = _definition(job, values["spec"])
        write_audit(conn, [audit_row(by, "job.create", job.id, detail)])


def upsert_jobs(
    conn: Connection, *, db: Backend, batch: Sequence[JobRecord], by: Actor | None
) -> dict[str, int]:
    """``Store.upsert_jobs``: each job's creation time as stored, by id."""
    values = [job_values(job) for job in batch]
    if len(values) == 1:  # a PUT: the hot case
        rows = db._upsert_job.execute(conn, values[0])
    else:
        rows = conn.execute(db._upsert_jobs, values).all()
    stored = {job_id: created_us for job_id, created_us in rows}
    # Every job's old tags go: "created" is told apart by creation times, which two
    # nodes' clocks could make equal, and a stale tag would list a job wrongly for good.
    set_tags(conn, batch, replacing=[job.id for job in batch])
    db._notify_many(conn, [(job.next_run_us, job.id) for job in batch])
    if by is not None:
        write_audit(conn, _upsert_audit(by, batch, values, stored))
    return stored


def apply_jobs(
    conn: Connection,
    *,
    db: Backend,
    upserts: Sequence[JobRecord],
    deletes: Sequence[str],
    by: Actor,
    summary: dict[str, object],
) -> None:
    """``Store.apply_jobs``."""
    if upserts:
        upsert_jobs(conn, db=db, batch=upserts, by=None)
    for job_id in deletes:
        with contextlib.suppress(JobNotFound):
            delete_job(conn, db=db, job_id=job_id, purge_runs=False, by=None)
    write_audit(conn, [audit_row(by, "jobs.apply", "jobs", summary)])


def update_job(
    conn: Connection,
    *,
    db: Backend,
    job: JobRecord,
    expected_updated_us: int,
    by: Actor | None,
    action: str,
) -> None:
    values = job_values(job)
    del values["created_us"]
    query = update(jobs).where(jobs.c.id == job.id, jobs.c.updated_us == expected_updated_us)
    if conn.execute(query.values(values)).rowcount:
        set_tags(conn, [job], replacing=[job.id])
        db._notify(conn, job.next_run_us, job.id)
        if by is not None:
            detail = _definition(job, values["spec"]) if action == "job.update" else None
            write_audit(conn, [audit_row(by, action, job.id, detail)])
        return
    if conn.execute(select(jobs.c.id).where(jobs.c.id == job.id)).first() is None:
        raise JobNotFound(job.id)
    raise Conflict(f"Job {job.id!r} was changed meanwhile; read it again and retry")


def list_jobs(query: JobQuery) -> list[Select[Any]]:
    """The statements that list the jobs ``query`` asks for, to read in turn until a page is
    full."""
    chosen = select(*JOB_COLUMNS).where(*job_filter(query))
    # The id to order by: with a tag, the tag table's, whose index is already in that order.
    key = jobs.c.id
    if query.tag is not None:
        chosen = chosen.join(
            job_tags, (job_tags.c.job_id == jobs.c.id) & (job_tags.c.tag == query.tag)
        )
        key = job_tags.c.job_id
    after_us, after_id = query.after or (None, None)
    by_id = chosen.order_by(key)
    if not query.by_next_run:
        return [by_id if after_id is None else by_id.where(key > after_id)]
    # Jobs with a next run, soonest first; then (on a page not yet full) those without,
    # by id. A cursor with a next run is in the first part, one without in the second.
    due = jobs.c.next_run_us
    by_due = chosen.where(due.is_not(None)).order_by(due, jobs.c.id)
    without = by_id.where(due.is_(None))
    if query.after is None:
        return [by_due, without]
    if after_us is not None:
        later = (due > after_us) | ((due == after_us) & (jobs.c.id > after_id))
        return [by_due.where(later), without]
    return [without.where(key > after_id)]


def read_page(conn: Connection, statements: list[Select[Any]], limit: int) -> list[JobRecord]:
    rows: list[Sequence[Any]] = []
    for statement in statements:
        if len(rows) < limit:
            rows += conn.execute(statement.limit(limit - len(rows))).all()
    return [job_from_row(row) for row in rows]


def job_filter(query: JobQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.prefix:
        # Ids compare bytewise (see schema.py): those with a prefix are the range up to the
        # prefix with its last character raised by one, read from the primary key (also by
        # a prepared statement's generic plan, which a LIKE pattern's would not be).
        after = query.prefix[:-1] + chr(ord(query.prefix[-1]) + 1)
        conditions += [jobs.c.id >= query.prefix, jobs.c.id < after]
    if query.state is not None:
        conditions.append(_STATE[query.state])
    return conditions


def counts(rows: Sequence[Sequence[Any]]) -> dict[JobState, int]:
    """The jobs per state, from the rows of ``COUNT_JOBS``."""
    by_state = dict.fromkeys(JobState, 0)
    for paused, is_tripped, is_finished, count in rows:
        by_state[JobState.of(paused, is_tripped, None if is_finished else 0)] += count
    return by_state


def delete_job(
    conn: Connection, *, db: Backend, job_id: str, purge_runs: bool, by: Actor | None
) -> None:
    if not conn.execute(jobs.delete().where(jobs.c.id == job_id)).rowcount:
        raise JobNotFound(job_id)
    _DROP_TAGS.execute(conn, {"b_id": job_id})
    if by is not None:
        detail = {"purge_runs": True} if purge_runs else None
        write_audit(conn, [audit_row(by, "job.delete", job_id, detail)])
    db._notify(conn, None, job_id)
    skipped = conn.execute(
        update(runs)
        .where(runs.c.job_id == job_id, IS_QUEUED)
        .values(status=RunStatus.SKIPPED.value, error=_DELETED)
    ).rowcount
    stats.count_ended(conn, db, "", [(job_id, RunStatus.SKIPPED, None)] * skipped)
    if purge_runs:
        purge = runs.delete().where(runs.c.job_id == job_id, FINAL)
        purged = db._dialect.delete_returning(conn, purge, [runs.c.job_id, runs.c.status])
        stats.uncount(conn, purged)
    stats.forget_last(conn, job_id)


def set_tags(
    conn: Connection, batch: Sequence[JobRecord], *, replacing: Sequence[str] = ()
) -> None:
    """Write the tags of ``batch``'s jobs, first dropping those the jobs in ``replacing`` had."""
    if replacing:
        _DROP_TAGS.executemany(conn, [{"b_id": job_id} for job_id in replacing])
    rows = [{"tag": tag, "job_id": job.id} for job in batch for tag in job.spec.tags]
    if rows:
        _ADD_TAGS.executemany(conn, rows)


def _definition(job: JobRecord, spec_json: str | None = None) -> str:
    """A job's definition for the audit log, its secrets masked (``spec_json``: the spec as
    stored, reused when there is nothing to mask)."""
    masked = job.spec.masked()
    if masked is job.spec and spec_json is not None:
        return spec_json
    return masked.model_dump_json()


def _upsert_audit(
    by: Actor, batch: Sequence[JobRecord], values: list[dict[str, Any]], stored: dict[str, int]
) -> list[dict[str, Any]]:
    detailed = len(batch) <= _AUDIT_DEFINITIONS_UP_TO
    return [
        audit_row(
            by,
            "job.create" if stored[job.id] == job.created_us else "job.replace",
            job.id,
            _definition(job, row["spec"]) if detailed else None,
        )
        for job, row in zip(batch, values, strict=True)
    ]
