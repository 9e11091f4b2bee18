"""The run ledger's transactions: manual runs queued, due work claimed (queued runs started,
due fires planned), outcomes recorded with the retries they ask for, and runs interrupted."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, bindparam, func, select, true, update

from kairos.errors import JobNotFound, RunEnded, RunNotFound
from kairos.identity import Actor
from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.claims import Claim, ClaimPolicy, FinishedRun, QueuedRun, Slots, StartedRun
from kairos.store.driver import DriverStatement
from kairos.store.schema import CAN_CALL, IS_QUEUED, IS_RUNNING, jobs, runs
from kairos.store.sql import breaker, stats
from kairos.store.sql.accounts import audit_row, write_audit
from kairos.store.sql.backend import Backend
from kairos.store.sql.rows import MOVE_JOBS, run_from_row, run_values

__all__ = [
    "FINISHED_COLUMNS",
    "FINISHED_RETURNING",
    "FINISHED_WHERE",
    "NEXT_RUN_DUE",
    "PENDING_RUN_COLUMNS",
    "RUNNING_COUNTS",
    "RUN_KEY",
    "add_manual_run",
    "cancel_run",
    "claim",
    "finish",
    "interrupt",
    "interrupt_running",
]

_INTERRUPTED = "the node running it stopped before the call finished"
# What ``interrupt`` reads of the runs it interrupts, to queue their retries.
_INTERRUPTED_COLUMNS = (
    runs.c.id,
    runs.c.job_id,
    runs.c.scheduled_for_us,
    runs.c.attempt,
    runs.c.manual,
)
# The ledger's key: one run per fire and attempt.
RUN_KEY = ("job_id", "scheduled_for_us", "attempt")
# A queued run's own columns in the claim's read of pending runs, in the order ``_start_pending``
# unpacks them; its job's follow.
PENDING_RUN_COLUMNS = (
    runs.c.id.label("run_id"),
    runs.c.scheduled_for_us,
    runs.c.due_us,
    runs.c.attempt,
    runs.c.manual,
)
# The statements of the dispatch path, built once: building one costs more than running it.
# A job kept from being deleted until this transaction ends (on PostgreSQL; SQLite has one
# writer), so that a run queued for it is never left behind by the delete, never to start: a
# delete under way makes this wait and find no job, a later one waits and skips the run. Other
# changes of the job need not wait.
_JOB_KEPT = (
    select(jobs.c.id)
    .where(jobs.c.id == bindparam("b_id"))
    .with_for_update(read=True, key_share=True)
)
_START_PENDING = DriverStatement(
    update(runs)
    .where(runs.c.id == bindparam("b_id"))
    .values(
        status=RunStatus.RUNNING.value,
        node_id=bindparam("b_node"),
        started_us=bindparam("b_started"),
    )
)
_MISS_PENDING = DriverStatement(
    update(runs)
    .where(runs.c.id == bindparam("b_id"))
    .values(
        status=RunStatus.MISSED.value,
        finished_us=bindparam("b_finished"),
        error=bindparam("b_error"),
    )
)
# What recording outcomes writes of each run (``finish_runs``), keyed ``b_<column>`` (see
# ``SqlDialect.update_rows``); the node recording them is ``b_node``.
FINISHED_COLUMNS = (
    "status",
    "started_us",
    "finished_us",
    "http_status",
    "error",
    "response_excerpt",
)
# Only a run still held by the recording node changes.
FINISHED_WHERE = and_(IS_RUNNING, runs.c.node_id == bindparam("b_node"))
# What it reads back of each run it changed, in the order ``finish`` unpacks them.
FINISHED_RETURNING = (
    runs.c.id,
    runs.c.job_id,
    runs.c.scheduled_for_us,
    runs.c.attempt,
    runs.c.manual,
)
RUNNING_COUNTS = (
    select(runs.c.job_id, runs.c.node_id, func.count())
    .where(IS_RUNNING, runs.c.job_id.in_(bindparam("ids", expanding=True)))
    .group_by(runs.c.job_id, runs.c.node_id)
)
_NEXT_JOB_DUE = select(func.min(jobs.c.next_run_us)).where(CAN_CALL)
NEXT_RUN_DUE = (
    select(func.min(runs.c.due_us))
    .join(jobs, jobs.c.id == runs.c.job_id)
    .where(IS_QUEUED, runs.c.due_us > bindparam("now"), CAN_CALL)
)


def add_manual_run(
    conn: Connection, *, db: Backend, job_id: str, scheduled_for_us: int, by: Actor | None
) -> RunRecord:
    if conn.execute(_JOB_KEPT, {"b_id": job_id}).first() is None:
        raise JobNotFound(job_id)
    at = scheduled_for_us
    while True:  # two manual runs in one microsecond: the ledger key needs distinct times
        query = db._dialect.returning(db._insert_runs, runs.c.id)
        values = run_values(job_id, at, RunStatus.SCHEDULED, manual=True)
        run_id = conn.execute(query.values(values)).scalar()
        if run_id is not None:
            db._notify(conn, None)
            if by is not None:
                write_audit(conn, [audit_row(by, "job.run", job_id, {"run_id": run_id})])
            return RunRecord(run_id, job_id, at, 1, RunStatus.SCHEDULED, manual=True)
        at += 1


def claim(
    conn: Connection,
    *,
    db: Backend,
    now_us: int,
    ahead_us: int,
    limit: int,
    node_id: str,
    policy: ClaimPolicy,
    finished: Sequence[FinishedRun],
) -> Claim:
    """``Store.claim_due``: record ``finished`` first, then claim."""
    paused = finish(conn, db=db, node_id=node_id, finished=finished) if finished else {}
    claimed = _claim(conn, db, now_us, ahead_us, limit, node_id, policy)
    claimed.paused.update(paused)
    return claimed


def _claim(
    conn: Connection,
    db: Backend,
    now_us: int,
    ahead_us: int,
    limit: int,
    node_id: str,
    policy: ClaimPolicy,
) -> Claim:
    # Queued runs (run now, retries) first: they are older work, and a fire claimed ahead
    # must not hold the slot a queued run of its job is waiting for.
    started, waiting, missed = _start_pending(conn, db, now_us, limit, node_id, policy)
    queued_started = Counter(run.job.id for run in started)
    budget = limit - len(started)
    due_by = now_us + ahead_us
    due = db._due_jobs.execute(conn, {"due_by": due_by, "limit": limit, "node": node_id})
    claimed = [db._due_job(row) for row in due]
    running = _running_counts(conn, db, [job.id for job in claimed], node_id)
    for job_id, n in queued_started.items():
        running[job_id] = running.get(job_id, 0) - n  # in flight "before this pass": not them
    rows: list[dict[str, Any]] = []
    moves: list[dict[str, Any]] = []
    recorded: Counter[RunStatus] = Counter({RunStatus.MISSED: missed} if missed else {})
    for job in claimed:
        slots = Slots(running.get(job.id, 0), queued_started.get(job.id, 0), budget)
        fire_plan = policy.plan_due(job, now_us, slots)
        if fire_plan.pause_reason is not None:
            unplanned = jobs.c.paused.is_(False)
            reason = fire_plan.pause_reason
            breaker.set_paused(
                conn, db, job.id, True, unplanned, now_us, pause_reason=reason, next_run_us=None
            )
            continue
        for planned in fire_plan.runs:
            values = run_values(job.id, planned.scheduled_for_us, planned.status, False)
            if planned.status is RunStatus.RUNNING:
                budget -= 1
                values["node_id"] = node_id
                values["started_us"] = max(now_us, _due_of(job, planned.scheduled_for_us))
            elif planned.status is RunStatus.SCHEDULED:
                waiting = True  # queued behind a run started in this pass
            else:
                values.update(error=planned.error, node_id=node_id, finished_us=now_us)
                recorded[planned.status] += 1
            rows.append(values)
        moves.append(
            {"b_id": job.id, "b_fire": fire_plan.next_fire_us, "b_run": fire_plan.next_run_us}
        )
    started += _insert_claimed(conn, db, rows, {job.id: job for job in claimed}, node_id, now_us)
    MOVE_JOBS.executemany(conn, moves)
    exhausted = len(due) >= limit or len(started) >= limit
    return Claim(
        started,
        recorded,
        exhausted,
        None if exhausted else _next_due(conn, now_us, node_id),
        waiting,
    )


def _running_counts(conn: Connection, db: Backend, job_ids: list[str], me: str) -> dict[str, int]:
    """Runs in flight per job, for ``max_instances``; runs of nodes known to have crashed
    are not in flight, whether or not their lease has run out yet."""
    if not job_ids:
        return {}
    rows = conn.execute(RUNNING_COUNTS, {"ids": job_ids}).all()
    others = {node for _, node, _ in rows if node != me}
    crashed = db._crashed(conn, others, me) if others else set()
    counts: dict[str, int] = {}
    for job_id, node, n in rows:
        if node not in crashed:
            counts[job_id] = counts.get(job_id, 0) + n
    return counts


def _insert_claimed(
    conn: Connection,
    db: Backend,
    rows: list[dict[str, Any]],
    by_id: dict[str, JobRecord],
    node_id: str,
    now_us: int,
) -> list[StartedRun]:
    """Insert the planned runs (those whose fire the ledger holds already are left out);
    return the ones started, and count the ones recorded ended (``missed``, ``skipped``)."""
    if not rows:
        return []
    started = []
    ended: list[stats.Ended] = []
    for run_id, job_id, scheduled_for_us, status in db._insert_claimed_runs.execute_each(
        conn, rows
    ):
        if status == RunStatus.RUNNING.value:
            job = by_id[job_id]
            run = RunRecord(run_id, job_id, scheduled_for_us, 1, RunStatus.RUNNING)
            started.append(StartedRun(run, job, _due_of(job, scheduled_for_us)))
        elif status != RunStatus.SCHEDULED.value:
            ended.append((job_id, RunStatus(status), now_us))
    stats.count_ended(conn, db, node_id, ended)
    return started


def _start_pending(
    conn: Connection, db: Backend, now_us: int, budget: int, node_id: str, policy: ClaimPolicy
) -> tuple[list[StartedRun], bool, int]:
    """Start the queued runs that are due as ``policy`` admits them, and say whether some
    wait for a run of their job to finish first. The third value: how many were too late
    and recorded ``missed``."""
    rows = db._due_pending.execute(conn, {"due_by": now_us, "limit": budget, "node": node_id})
    split = len(PENDING_RUN_COLUMNS)
    pending = [(row[:split], db._due_job(row[split:])) for row in rows]
    running = _running_counts(conn, db, list({job.id for _, job in pending}), node_id)
    begun: Counter[str] = Counter()
    started: list[StartedRun] = []
    updates: list[dict[str, Any]] = []
    waiting = False
    missed: list[dict[str, Any]] = []
    ended: list[stats.Ended] = []
    for (run_id, scheduled_for_us, due_us, attempt, manual), job in pending:
        # SQLite's driver gives ``manual`` as 0 or 1.
        queued = QueuedRun(run_id, scheduled_for_us, due_us, attempt, bool(manual))
        slots = Slots(running.get(job.id, 0), begun[job.id], budget - len(started))
        admitted = policy.admit_queued(queued, job, now_us, slots)
        if admitted.status is RunStatus.MISSED:
            missed.append({"b_id": run_id, "b_finished": now_us, "b_error": admitted.error})
            ended.append((job.id, RunStatus.MISSED, now_us))
            continue
        if admitted.status is not RunStatus.RUNNING:
            waiting = True
            continue
        begun[job.id] += 1
        updates.append({"b_id": run_id, "b_node": node_id, "b_started": now_us})
        run = RunRecord(
            run_id,
            job.id,
            scheduled_for_us,
            attempt,
            RunStatus.RUNNING,
            manual=queued.manual,
            node_id=node_id,
            started_us=now_us,
        )
        started.append(StartedRun(run, job, scheduled_for_us))
    _START_PENDING.executemany(conn, updates)
    _MISS_PENDING.executemany(conn, missed)
    stats.count_ended(conn, db, node_id, ended)
    return started, waiting, len(missed)


def finish(
    conn: Connection, *, db: Backend, node_id: str, finished: Sequence[FinishedRun]
) -> dict[int, str]:
    """Record outcomes, fenced (see ``Store.finish_runs``), queue the retries they ask for and
    move the circuit breakers of their jobs."""
    by_id = {f.run_id: f for f in finished}
    rows = [_finish_row(f) for f in by_id.values()]
    held = db._finish_runs.run(conn, rows, {"b_node": node_id})
    if not held:
        return {}
    ended: list[stats.Ended] = []
    retries = []
    verdicts = []
    for run_id, job_id, scheduled_for_us, attempt, manual in held:
        done = by_id[run_id]
        ended.append((job_id, done.status, done.finished_us))
        if done.retry_due_us is not None:
            # SQLite's and MariaDB's drivers give ``manual`` as 0 or 1.
            retry = run_values(
                job_id,
                scheduled_for_us,
                RunStatus.SCHEDULED,
                bool(manual),
                attempt + 1,
                due_us=done.retry_due_us,
            )
            retries.append(retry)
        if done.verdict is not None:
            verdicts.append((run_id, job_id, done.verdict))
    if retries:
        conn.execute(db._insert_runs, retries)
        db._notify(conn, min(row["due_us"] for row in retries))
    paused = {}
    for run_id, job_id, verdict in sorted(verdicts):
        reason = breaker.judge(conn, db, job_id, verdict)
        if reason is not None:
            paused[run_id] = reason
    stats.count_ended(conn, db, node_id, ended)
    return paused


def cancel_run(conn: Connection, *, db: Backend, run_id: int, by: Actor) -> RunRecord:
    """``Store.cancel_run``."""
    # Locked, so that a finish or a takeover waiting for the row acts on what this wrote.
    row = conn.execute(select(runs).where(runs.c.id == run_id).with_for_update()).first()
    if row is None:
        raise RunNotFound(run_id)
    run = run_from_row(row)
    if run.status not in (RunStatus.SCHEDULED, RunStatus.RUNNING):
        raise RunEnded(run_id, run.status.value)
    cancelled = dataclasses.replace(
        run,
        status=RunStatus.CANCELLED,
        finished_us=by.at_us,
        due_us=None,
        error=f"cancelled by {by.name}",
    )
    conn.execute(
        update(runs)
        .where(runs.c.id == run_id)
        .values(
            status=cancelled.status.value, finished_us=by.at_us, due_us=None, error=cancelled.error
        )
    )
    write_audit(conn, [audit_row(by, "run.cancel", run.job_id, {"run_id": run_id})])
    stats.count_ended(conn, db, "", [(run.job_id, RunStatus.CANCELLED, by.at_us)])
    return cancelled


def interrupt_running(
    conn: Connection, *, db: Backend, node_id: str | None, retries: int, policy: ClaimPolicy
) -> int:
    """``Store.interrupt_running``."""
    condition = runs.c.node_id == node_id if node_id is not None else true()
    return interrupt(conn, db, condition, db._db_now_us(conn), retries, policy, node_id or "")


def interrupt(
    conn: Connection,
    db: Backend,
    condition: ColumnElement[bool],
    now_us: int,
    retries: int,
    policy: ClaimPolicy,
    node_id: str = "",
) -> int:
    """Mark the running runs that meet ``condition`` interrupted and queue their retries;
    return how many there were. ``node_id``: the node counted as recording it ('' for none)."""
    # One statement: a run its node finishes meanwhile is no longer ``running`` when this
    # reaches it (PostgreSQL checks the row again after waiting for its lock).
    stop = (
        update(runs)
        .where(IS_RUNNING, condition)
        .values(status=RunStatus.INTERRUPTED.value, finished_us=now_us, error=_INTERRUPTED)
    )
    victims = db._dialect.update_returning(conn, stop, _INTERRUPTED_COLUMNS)
    if not victims:
        return 0
    alive = set(
        conn.execute(select(jobs.c.id).where(jobs.c.id.in_({v.job_id for v in victims}))).scalars()
    )
    retried = [
        run_values(v.job_id, v.scheduled_for_us, RunStatus.SCHEDULED, v.manual, v.attempt + 1)
        for v in victims
        if v.attempt <= retries and v.job_id in alive
    ]
    if retried:
        conn.execute(db._insert_runs, retried)
        db._notify(conn, None)
    given_up = {v.job_id for v in victims if v.attempt > retries and v.job_id in alive}
    if given_up:
        breaker.rearm_probes(conn, db, given_up, now_us, policy)
    interrupted = RunStatus.INTERRUPTED
    stats.count_ended(conn, db, node_id, [(v.job_id, interrupted, now_us) for v in victims])
    return len(victims)


def _finish_row(f: FinishedRun) -> dict[str, Any]:
    """``f`` as a row of ``Backend._finish_runs``."""
    return {
        "b_id": f.run_id,
        "b_status": f.status.value,
        "b_started_us": f.started_us,
        "b_finished_us": f.finished_us,
        "b_http_status": f.http_status,
        "b_error": f.error,
        "b_response_excerpt": f.response_excerpt,
    }


def _due_of(job: JobRecord, scheduled_for_us: int) -> int:
    """When a planned fire of ``job`` falls due: its nominal time, plus the job's jitter if it is
    the fire the job was waiting for (catch-up fires are due at once anyway)."""
    if scheduled_for_us == job.next_fire_us and job.next_run_us is not None:
        return job.next_run_us
    return scheduled_for_us


def _next_due(conn: Connection, now_us: int, node_id: str) -> int | None:
    """The next job or queued run that ``node_id`` can call to fall due. Queued runs due by
    now are waiting for a slot (see ``Claim.waiting_for_slot``), not for a time."""
    job_due = conn.execute(_NEXT_JOB_DUE, {"node": node_id}).scalar()
    run_due = conn.execute(NEXT_RUN_DUE, {"now": now_us, "node": node_id}).scalar()
    candidates = [t for t in (job_due, run_due) if t is not None]
    return min(candidates) if candidates else None
