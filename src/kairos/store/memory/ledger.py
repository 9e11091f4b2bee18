"""The run ledger's operations on a memory store's ``Tables``: manual runs queued, due work
claimed (queued runs started, due fires planned), outcomes recorded with the retries they ask for,
and runs interrupted. Each is the same transaction as the SQL store's (``store/sql/ledger.py``)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice, takewhile

from kairos.errors import JobNotFound, RunEnded, RunNotFound
from kairos.identity import Actor
from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.claims import (
    Claim,
    ClaimPolicy,
    FinishedRun,
    PlannedRun,
    QueuedRun,
    Slots,
    StartedRun,
)
from kairos.store.memory import breaker
from kairos.store.memory.tables import Tables, check_int64

__all__ = ["add_manual_run", "cancel_run", "claim", "finish", "interrupt"]

_INTERRUPTED = "the node running it stopped before the call finished"


def cancel_run(t: Tables, run_id: int, by: Actor) -> RunRecord:
    """``Store.cancel_run``."""
    run = t.runs.get(run_id)
    if run is None:
        raise RunNotFound(run_id)
    if run.status not in (RunStatus.SCHEDULED, RunStatus.RUNNING):
        raise RunEnded(run_id, run.status.value)
    error = f"cancelled by {by.name}"
    cancelled = dataclasses.replace(
        run, status=RunStatus.CANCELLED, finished_us=by.at_us, due_us=None, error=error
    )
    t.put_run(cancelled)
    t.write_audit(by, "run.cancel", run.job_id, {"run_id": run_id})
    return cancelled


def add_manual_run(t: Tables, job_id: str, scheduled_for_us: int, by: Actor | None) -> RunRecord:
    if job_id not in t.jobs:
        raise JobNotFound(job_id)
    at = scheduled_for_us
    while (job_id, at, 1) in t.fires:  # two manual runs in one microsecond: the key needs two
        at += 1
    check_int64(at)
    run = RunRecord(t.new_run_id(), job_id, at, 1, RunStatus.SCHEDULED, manual=True, due_us=at)
    t.put_run(run)
    if by is not None:
        t.write_audit(by, "job.run", job_id, {"run_id": run.id})
    return run


def claim(
    t: Tables,
    now_us: int,
    ahead_us: int,
    limit: int,
    node_id: str,
    policy: ClaimPolicy,
    finished: Sequence[FinishedRun],
) -> Claim:
    """``Store.claim_due``: record ``finished`` first, then claim."""
    paused = finish(t, node_id, finished) if finished else {}
    node = t.nodes.get(node_id)
    tasks = node.tasks if node is not None else frozenset()
    # Queued runs (run now, retries) first: they are older work, and a fire claimed ahead
    # must not hold the slot a queued run of its job is waiting for.
    started, waiting, missed = _start_pending(t, now_us, limit, node_id, tasks, policy)
    queued_started = Counter(run.job.id for run in started)
    budget = limit - len(started)
    due_by = now_us + ahead_us
    due = _due_jobs(t, due_by, limit, tasks)
    recorded: Counter[RunStatus] = Counter({RunStatus.MISSED: missed} if missed else {})
    for job in due:
        # In flight "before this pass": not the queued runs it has just started.
        running = t.running_by_job.get(job.id, 0) - queued_started[job.id]
        slots = Slots(running, queued_started[job.id], budget)
        fire_plan = policy.plan_due(job, now_us, slots)
        if fire_plan.pause_reason is not None:
            reason = fire_plan.pause_reason
            breaker.set_paused(
                t, job.id, True, _not_paused, now_us, pause_reason=reason, next_run_us=None
            )
            continue
        for planned in fire_plan.runs:
            if planned.status is RunStatus.RUNNING:
                budget -= 1
            elif planned.status is RunStatus.SCHEDULED:
                waiting = True  # queued behind a run started in this pass
            else:
                recorded[planned.status] += 1
            run = _planned_run(t, job, planned, now_us, node_id)
            if run is not None and run.status is RunStatus.RUNNING:
                started.append(StartedRun(run, job, _due_of(job, planned.scheduled_for_us)))
        next_fire_us, next_run_us = fire_plan.next_fire_us, fire_plan.next_run_us
        check_int64(next_fire_us, next_run_us)
        moved = dataclasses.replace(job, next_fire_us=next_fire_us, next_run_us=next_run_us)
        t.put_job(moved)
    exhausted = len(due) >= limit or len(started) >= limit
    next_due = None if exhausted else _next_due(t, now_us, tasks)
    return Claim(started, recorded, exhausted, next_due, waiting, paused)


def _due_jobs(t: Tables, due_by: int, limit: int, tasks: frozenset[str]) -> list[JobRecord]:
    """The first ``limit`` jobs due by ``due_by`` that a node with ``tasks`` can call, oldest
    first."""
    due = takewhile(lambda key: key[0] <= due_by, t.due.ascending())
    jobs = (t.jobs[job_id] for _, job_id in due)
    return list(islice(_callable(jobs, tasks), limit)) if limit > 0 else []


def _callable(jobs: Iterable[JobRecord], tasks: frozenset[str]) -> Iterator[JobRecord]:
    """Those of ``jobs`` whose target needs no task, or one of ``tasks``."""
    for job in jobs:
        needed = job.spec.target.task_needed
        if needed is None or needed in tasks:
            yield job


def _planned_run(
    t: Tables, job: JobRecord, planned: PlannedRun, now_us: int, node_id: str
) -> RunRecord | None:
    """Record a planned run of ``job``; None if the ledger holds its fire already."""
    at = planned.scheduled_for_us
    check_int64(at)
    if (job.id, at, 1) in t.fires:
        return None
    run = RunRecord(t.new_run_id(), job.id, at, 1, planned.status)
    if planned.status is RunStatus.RUNNING:
        started_us = max(now_us, _due_of(job, at))
        run = dataclasses.replace(run, node_id=node_id, started_us=started_us)
    elif planned.status is RunStatus.SCHEDULED:
        run = dataclasses.replace(run, due_us=at)
    else:
        run = dataclasses.replace(run, error=planned.error, node_id=node_id, finished_us=now_us)
    t.put_run(run)
    return run


def _start_pending(
    t: Tables, now_us: int, budget: int, node_id: str, tasks: frozenset[str], policy: ClaimPolicy
) -> tuple[list[StartedRun], bool, int]:
    """Start the queued runs that are due as ``policy`` admits them, and say whether some
    wait for a run of their job to finish first. The third value: how many were too late
    and recorded ``missed``."""
    pending: list[tuple[RunRecord, JobRecord]] = []
    for due_us, run_id in t.queued.ascending():
        if due_us > now_us or len(pending) >= budget:
            break
        run = t.runs[run_id]
        job = t.jobs.get(run.job_id)
        if job is not None and any(_callable([job], tasks)):
            pending.append((run, job))
    running = {job.id: t.running_by_job.get(job.id, 0) for _, job in pending}
    begun: Counter[str] = Counter()
    started: list[StartedRun] = []
    waiting = False
    missed = 0
    for run, job in pending:
        assert run.due_us is not None
        queued = QueuedRun(run.id, run.scheduled_for_us, run.due_us, run.attempt, run.manual)
        slots = Slots(running[job.id], begun[job.id], budget - len(started))
        admitted = policy.admit_queued(queued, job, now_us, slots)
        if admitted.status is RunStatus.MISSED:
            missed_run = dataclasses.replace(run, status=RunStatus.MISSED, due_us=None)
            t.put_run(dataclasses.replace(missed_run, finished_us=now_us, error=admitted.error))
            missed += 1
            continue
        if admitted.status is not RunStatus.RUNNING:
            waiting = True
            continue
        begun[job.id] += 1
        run = dataclasses.replace(
            run, status=RunStatus.RUNNING, node_id=node_id, started_us=now_us, due_us=None
        )
        t.put_run(run)
        started.append(StartedRun(run, job, run.scheduled_for_us))
    return started, waiting, missed


def finish(t: Tables, node_id: str, finished: Sequence[FinishedRun]) -> dict[int, str]:
    """Record outcomes, fenced (see ``Store.finish_runs``), queue the retries they ask for and
    move the circuit breakers of their jobs."""
    held: list[tuple[RunRecord, FinishedRun]] = []
    for outcome in finished:
        run = t.runs.get(outcome.run_id)
        if run is None or run.status is not RunStatus.RUNNING or run.node_id != node_id:
            continue  # taken over by another node: its fate is theirs now
        t.put_run(
            dataclasses.replace(
                run,
                status=outcome.status,
                started_us=outcome.started_us,
                finished_us=outcome.finished_us,
                http_status=outcome.http_status,
                error=outcome.error,
                response_excerpt=outcome.response_excerpt,
            )
        )
        held.append((run, outcome))
    for run, outcome in held:
        if outcome.retry_due_us is not None:
            _queue(t, run, outcome.retry_due_us)
    paused = {}
    for run, outcome in held:
        if outcome.verdict is not None:
            reason = breaker.judge(t, run.job_id, outcome.verdict)
            if reason is not None:
                paused[run.id] = reason
    return paused


def interrupt(
    t: Tables, run_ids: Iterable[int], now_us: int, retries: int, policy: ClaimPolicy
) -> int:
    """Mark the runs ``run_ids`` (running ones) interrupted and queue their retries; return how
    many there were."""
    victims = [t.runs[run_id] for run_id in sorted(run_ids)]
    for run in victims:
        stopped = RunStatus.INTERRUPTED
        t.put_run(dataclasses.replace(run, status=stopped, finished_us=now_us, error=_INTERRUPTED))
    alive = [run for run in victims if run.job_id in t.jobs]
    for run in alive:
        if run.attempt <= retries:
            _queue(t, run, run.scheduled_for_us)
    given_up = {run.job_id for run in alive if run.attempt > retries}
    breaker.rearm_probes(t, given_up, now_us, policy)
    return len(victims)


def _queue(t: Tables, run: RunRecord, due_us: int) -> None:
    """Queue the next attempt of ``run``'s fire, due at ``due_us``, unless the ledger has it."""
    attempt = run.attempt + 1
    if (run.job_id, run.scheduled_for_us, attempt) in t.fires:
        return
    check_int64(due_us)
    scheduled = RunStatus.SCHEDULED
    retry = RunRecord(
        t.new_run_id(), run.job_id, run.scheduled_for_us, attempt, scheduled, run.manual
    )
    t.put_run(dataclasses.replace(retry, due_us=due_us))


def _due_of(job: JobRecord, scheduled_for_us: int) -> int:
    """When a planned fire of ``job`` falls due: its nominal time, plus the job's jitter if it is
    the fire the job was waiting for (catch-up fires are due at once anyway)."""
    if scheduled_for_us == job.next_fire_us and job.next_run_us is not None:
        return job.next_run_us
    return scheduled_for_us


def _next_due(t: Tables, now_us: int, tasks: frozenset[str]) -> int | None:
    """The next job or queued run that a node with ``tasks`` can call to fall due. Queued runs
    due by now are waiting for a slot (see ``Claim.waiting_for_slot``), not for a time."""
    jobs = (t.jobs[job_id] for _, job_id in t.due.ascending())
    first_job = next(_callable(jobs, tasks), None)
    later = t.queued.ascending((now_us, 2**63), inclusive=False)
    runs = ((due_us, t.jobs.get(t.runs[run_id].job_id)) for due_us, run_id in later)
    later_run = next(
        (due_us for due_us, job in runs if job is not None and any(_callable([job], tasks))),
        None,
    )
    job_due = None if first_job is None else first_job.next_run_us
    candidates = [at for at in (job_due, later_run) if at is not None]
    return min(candidates) if candidates else None


def _not_paused(job: JobRecord) -> bool:
    return not job.spec.paused
