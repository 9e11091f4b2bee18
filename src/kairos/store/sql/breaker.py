"""The circuit breaker's writes: a job's failures counted, the job paused or resumed within the
store as the engine's ``Verdict`` says, and the probe of a job it paused set again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, select, update

from kairos.identity import Actor
from kairos.models import JobSpec
from kairos.store.claims import ClaimPolicy, Verdict
from kairos.store.schema import jobs
from kairos.store.sql.accounts import audit_row, write_audit
from kairos.store.sql.backend import Backend
from kairos.store.sql.rows import JOB_COLUMNS, MOVE_JOBS

__all__ = ["COUNT_FAILURE", "judge", "rearm_probes", "set_paused"]

_BREAKER = "circuit-breaker"
_RESET_FAILURES = (
    update(jobs).where(jobs.c.id == bindparam("b_id"), jobs.c.failures != 0).values(failures=0)
)
COUNT_FAILURE = (
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"), jobs.c.paused.is_(False))
    .values(failures=jobs.c.failures + 1)
)


def judge(conn: Connection, db: Backend, job_id: str, verdict: Verdict) -> str | None:
    """Apply the verdict of one of a job's fires to its circuit breaker, with the times and
    reason it gives; return the pause reason if this verdict tripped it."""
    broken = jobs.c.pause_reason.is_not(None)
    at_us = verdict.decided_us
    if verdict.probe and not verdict.failed:
        fire_us, run_us = verdict.resume
        values = {"failures": 0, "pause_reason": None, "next_fire_us": fire_us}
        set_paused(conn, db, job_id, False, broken, at_us, next_run_us=run_us, **values)
        return None
    if verdict.probe:
        due = {"next_fire_us": verdict.next_probe_us, "next_run_us": verdict.next_probe_us}
        query = update(jobs).where(jobs.c.id == job_id, broken)
        if conn.execute(query.values(pause_reason=verdict.pause_reason, **due)).rowcount:
            db._notify(conn, verdict.next_probe_us, job_id)
        return None
    if not verdict.failed:
        conn.execute(_RESET_FAILURES, {"b_id": job_id})
        return None
    counted = db._dialect.update_returning(conn, COUNT_FAILURE, [jobs.c.failures], {"b_id": job_id})
    count = counted[0][0] if counted else None
    if verdict.limit is None or count is None or count < verdict.limit:
        return None
    reason, probe = verdict.pause_reason, verdict.next_probe_us
    paused = set_paused(
        conn,
        db,
        job_id,
        True,
        jobs.c.paused.is_(False),
        at_us,
        pause_reason=reason,
        next_fire_us=probe,
        next_run_us=probe,
    )
    return reason if paused else None


def set_paused(
    conn: Connection,
    db: Backend,
    job_id: str,
    paused: bool,
    condition: ColumnElement[bool],
    now_us: int,
    **values: Any,
) -> bool:
    """Pause or resume a job from within the store (its spec says so too) at ``now_us``, if
    ``condition`` holds (return whether it did); other replicas hear of it as of any change."""
    # Locked (on PostgreSQL) until the job is written back: a change made meanwhile (a PUT)
    # waits, instead of being overwritten with the spec read here.
    row = conn.execute(
        select(jobs.c.spec, jobs.c.updated_us)
        .where(jobs.c.id == job_id, condition)
        .with_for_update()
    ).first()
    if row is None:
        return False
    spec = JobSpec.from_stored(row.spec).model_copy(update={"paused": paused})
    updated_us = max(row.updated_us + 1, now_us)
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(spec=spec.model_dump_json(), paused=paused, updated_us=updated_us, **values)
    )
    db._notify(conn, values.get("next_run_us"), job_id)
    action, detail = ("job.pause", values["pause_reason"]) if paused else ("job.resume", None)
    by = Actor(_BREAKER, now_us)
    write_audit(conn, [audit_row(by, action, job_id, {"reason": detail} if detail else None)])
    return True


def rearm_probes(
    conn: Connection, db: Backend, job_ids: set[str], now_us: int, policy: ClaimPolicy
) -> None:
    """A probe of a job the circuit breaker paused was interrupted for good: its job has no
    next fire, so it would stay paused until resumed by hand. Set the next probe where
    ``policy`` gives one."""
    tripped = conn.execute(
        select(*JOB_COLUMNS)
        .where(
            jobs.c.id.in_(job_ids),
            jobs.c.pause_reason.is_not(None),
            jobs.c.next_run_us.is_(None),
        )
        .with_for_update()  # a job replaced meanwhile must not get this probe
    ).all()
    for row in tripped:
        job = db._due_job(row)
        probe_us = policy.next_probe_us(job, now_us)
        if probe_us is not None:
            MOVE_JOBS.execute(conn, {"b_id": job.id, "b_fire": probe_us, "b_run": probe_us})
            db._notify(conn, probe_us, job.id)
