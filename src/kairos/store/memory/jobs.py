"""The jobs' operations on a memory store's ``Tables``: create, replace, change, list, count and
delete jobs, with the audit records of those changes."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator, Sequence

from kairos.errors import Conflict, JobExists, JobNotFound
from kairos.identity import Actor
from kairos.models import JobRecord, JobState, RunStatus
from kairos.store.base import JobQuery
from kairos.store.memory.tables import Tables, check_int64

__all__ = [
    "apply_jobs",
    "count_jobs",
    "count_jobs_by_task",
    "delete_job",
    "insert_job",
    "list_jobs",
    "update_job",
    "upsert_jobs",
]

_DELETED = "the job was deleted before this run started"
# A batch this large is audited without each job's definition (only who created or replaced it).
_AUDIT_DEFINITIONS_UP_TO = 100


def insert_job(t: Tables, job: JobRecord, by: Actor | None) -> None:
    if job.id in t.jobs:
        raise JobExists(job.id)
    _check(job)
    t.put_job(job)
    if by is not None:
        t.write_audit(by, "job.create", job.id, _definition(job))


def upsert_jobs(t: Tables, batch: Sequence[JobRecord], by: Actor | None) -> dict[str, int]:
    """``Store.upsert_jobs``: each job's creation time as stored, by id."""
    for job in batch:
        _check(job)
    stored: dict[str, int] = {}
    for job in batch:
        old = t.jobs.get(job.id)
        if old is not None and old.created_us != job.created_us:
            job = dataclasses.replace(job, created_us=old.created_us)
        t.put_job(job)
        stored[job.id] = job.created_us
    if by is not None:
        detailed = len(batch) <= _AUDIT_DEFINITIONS_UP_TO
        for job in batch:
            action = "job.create" if stored[job.id] == job.created_us else "job.replace"
            t.write_audit(by, action, job.id, _definition(job) if detailed else None)
    return stored


def apply_jobs(
    t: Tables,
    upserts: Sequence[JobRecord],
    deletes: Sequence[str],
    by: Actor,
    summary: dict[str, object],
) -> None:
    """``Store.apply_jobs``."""
    upsert_jobs(t, upserts, None)
    for job_id in deletes:
        if job_id in t.jobs:
            delete_job(t, job_id, False, None)
    t.write_audit(by, "jobs.apply", "jobs", summary)


def update_job(
    t: Tables, job: JobRecord, expected_updated_us: int, by: Actor | None, action: str
) -> None:
    old = t.jobs.get(job.id)
    if old is None:
        raise JobNotFound(job.id)
    if old.updated_us != expected_updated_us:
        raise Conflict(f"Job {job.id!r} was changed meanwhile; read it again and retry")
    _check(job)
    t.put_job(dataclasses.replace(job, created_us=old.created_us))
    if by is not None:
        t.write_audit(by, action, job.id, _definition(job) if action == "job.update" else None)


def delete_job(t: Tables, job_id: str, purge_runs: bool, by: Actor | None) -> None:
    """``Store.delete_job``: pending runs become ``skipped``, runs in flight are left to finish."""
    if t.remove_job(job_id) is None:
        raise JobNotFound(job_id)
    if by is not None:
        t.write_audit(by, "job.delete", job_id, {"purge_runs": True} if purge_runs else None)
    for run_id in list(t.job_runs.get(job_id, ())):
        run = t.runs[run_id]
        if run.status is RunStatus.SCHEDULED:
            skipped = RunStatus.SKIPPED
            t.put_run(dataclasses.replace(run, status=skipped, error=_DELETED, due_us=None))
        elif purge_runs and run.finished_us is not None:
            t.remove_run(run_id)
    t.forget_last_call(job_id)


def list_jobs(t: Tables, query: JobQuery, limit: int) -> list[JobRecord]:
    page: list[JobRecord] = []
    if limit <= 0:
        return page
    for job in _ordered(t, query):
        if _matches(job, query):
            page.append(job)
            if len(page) >= limit:
                break
    return page


def count_jobs(t: Tables) -> dict[JobState, int]:
    counted = Counter(job.state for job in t.jobs.values())
    return {state: counted[state] for state in JobState}


def count_jobs_by_task(t: Tables) -> dict[str, int]:
    needed = (job.spec.target.task_needed for job in t.jobs.values())
    return dict(Counter(task for task in needed if task is not None))


def _ordered(t: Tables, query: JobQuery) -> Iterator[JobRecord]:
    """The jobs in ``query``'s order from its cursor on, not yet filtered by state or prefix."""
    after_us, after_id = query.after or (None, None)
    if not query.by_next_run:
        yield from _by_id(t, query, after_id)
        return
    # Jobs with a next run, soonest first; then those without, by id. A cursor with a next run
    # is in the first part, one without in the second.
    if query.after is None or after_us is not None:
        start = None if after_us is None or after_id is None else (after_us, after_id)
        for _, job_id in t.due.ascending(start, inclusive=False):
            yield t.jobs[job_id]
        after_id = None
    for job in _by_id(t, query, after_id):
        if job.next_run_us is None:
            yield job


def _by_id(t: Tables, query: JobQuery, after_id: str | None) -> Iterator[JobRecord]:
    """The jobs by id (with the query's tag, if any) after ``after_id``, from the first id with
    the query's prefix on; they stop past the prefix's range."""
    ids = t.job_ids if query.tag is None else t.tags.get(query.tag)
    if ids is None:
        return
    start, inclusive = after_id, False
    if query.prefix and (after_id is None or after_id < query.prefix):
        start, inclusive = query.prefix, True
    for job_id in ids.ascending(start, inclusive=inclusive):
        if query.prefix and not job_id.startswith(query.prefix) and job_id > query.prefix:
            return
        yield t.jobs[job_id]


def _matches(job: JobRecord, query: JobQuery) -> bool:
    if query.prefix and not job.id.startswith(query.prefix):
        return False
    if query.state is not None and job.state is not query.state:
        return False
    return query.tag is None or query.tag in job.spec.tags


def _check(job: JobRecord) -> None:
    check_int64(job.next_fire_us, job.next_run_us, job.created_us, job.updated_us)


def _definition(job: JobRecord) -> str:
    """A job's definition for the audit log, its secrets masked."""
    return job.spec.masked().model_dump_json()
