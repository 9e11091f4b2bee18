"""Rows to records and back, and the statements several of the store's concerns share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, update

from kairos.models import JobRecord, JobSpec, RunRecord, RunStatus
from kairos.store.driver import DriverStatement
from kairos.store.schema import jobs, runs

__all__ = [
    "FINAL",
    "JOB_COLUMNS",
    "MOVE_JOBS",
    "job_from_row",
    "job_values",
    "run_from_row",
    "run_values",
]

# What a ``JobRecord`` is made of, in the order of its fields (``job_from_row``).
JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.spec,
    jobs.c.next_fire_us,
    jobs.c.next_run_us,
    jobs.c.created_us,
    jobs.c.updated_us,
    jobs.c.failures,
    jobs.c.pause_reason,
)
# A run is history once it has finished; queued and running ones have no finish time yet.
FINAL = runs.c.finished_us.is_not(None)
MOVE_JOBS = DriverStatement(
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"))
    .values(next_fire_us=bindparam("b_fire"), next_run_us=bindparam("b_run"))
)


def job_values(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "spec": job.spec.model_dump_json(),
        "paused": job.spec.paused,
        "next_fire_us": job.next_fire_us,
        "next_run_us": job.next_run_us,
        "created_us": job.created_us,
        "updated_us": job.updated_us,
        "failures": job.failures,
        "pause_reason": job.pause_reason,
        "history_max_age_us": _max_age_us(job.spec),
        "task": job.spec.target.task_needed,
    }


def _max_age_us(spec: JobSpec) -> int | None:
    age = spec.history.max_age if spec.history is not None else None
    return None if age is None else int(age * 1_000_000)


def run_values(
    job_id: str,
    scheduled_for_us: int,
    status: RunStatus,
    manual: bool,
    attempt: int = 1,
    due_us: int | None = None,
) -> dict[str, Any]:
    """A new run row. A queued one is due at ``due_us``, by default its fire's time."""
    if status is RunStatus.SCHEDULED and due_us is None:
        due_us = scheduled_for_us
    return {
        "job_id": job_id,
        "scheduled_for_us": scheduled_for_us,
        "attempt": attempt,
        "status": status.value,
        "manual": manual,
        "node_id": None,
        "started_us": None,
        "finished_us": None,
        "error": None,
        "due_us": due_us,
    }


def job_from_row(row: Sequence[Any], spec: JobSpec | None = None) -> JobRecord:
    """The job in ``row`` (``JOB_COLUMNS``); ``spec``: its spec, already parsed."""
    job_id, text, *bookkeeping = row
    return JobRecord(job_id, JobSpec.from_stored(text) if spec is None else spec, *bookkeeping)


def run_from_row(row: Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        job_id=row.job_id,
        scheduled_for_us=row.scheduled_for_us,
        attempt=row.attempt,
        status=RunStatus(row.status),
        manual=row.manual,
        node_id=row.node_id,
        started_us=row.started_us,
        finished_us=row.finished_us,
        http_status=row.http_status,
        error=row.error,
        response_excerpt=row.response_excerpt,
        due_us=row.due_us if row.status == RunStatus.SCHEDULED.value else None,
    )
