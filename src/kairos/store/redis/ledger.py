"""The run ledger's changes as ``Tx`` transactions: manual runs queued, due work claimed,
outcomes recorded with their retries, runs interrupted. Each mirrors the memory store's
(``store/memory/ledger.py``), over Redis's indexes."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence

from kairos.errors import JobNotFound, RunEnded, RunNotFound
from kairos.identity import Actor
from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.base import (
    Claim,
    ClaimPolicy,
    FinishedRun,
    PlannedRun,
    QueuedRun,
    Slots,
    StartedRun,
)
from kairos.store.redis import breaker
from kairos.store.redis.jobs import check_int64
from kairos.store.redis.tx import Tx

__all__ = ["add_manual_run", "cancel_run", "claim", "finish", "interrupt"]

_INTERRUPTED = "the node running it stopped before the call finished"
_CHUNK = 100


async def cancel_run(tx: Tx, run_id: int, by: Actor) -> RunRecord:
    """``Store.cancel_run``."""
    run = await tx.run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    if run.status not in (RunStatus.SCHEDULED, RunStatus.RUNNING):
        raise RunEnded(run_id, run.status.value)
    error = f"cancelled by {by.name}"
    cancelled = dataclasses.replace(
        run, status=RunStatus.CANCELLED, finished_us=by.at_us, due_us=None, error=error
    )
    tx.replace_run(run, cancelled)
    await tx.audit(by, "run.cancel", run.job_id, {"run_id": run_id})
    return cancelled


async def add_manual_run(tx: Tx, job_id: str, scheduled_for_us: int, by: Actor | None) -> RunRecord:
    if await tx.job(job_id) is None:
        raise JobNotFound(job_id)
    at = scheduled_for_us
    while await tx.fire_taken(job_id, at, 1):  # two manual runs in one microsecond
        at += 1
    check_int64(at)
    run_id = await tx.new_id(tx.k.run_seq)
    run = RunRecord(run_id, job_id, at, 1, RunStatus.SCHEDULED, manual=True, due_us=at)
    tx.add_run(run)
    if by is not None:
        await tx.audit(by, "job.run", job_id, {"run_id": run.id})
    tx.notify(None)
    return run


async def claim(
    tx: Tx,
    now_us: int,
    ahead_us: int,
    limit: int,
    node_id: str,
    policy: ClaimPolicy,
    finished: Sequence[FinishedRun],
    tasks: frozenset[str],
) -> Claim:
    """``Store.claim_due``: record ``finished`` first, then claim."""
    paused = await finish(tx, node_id, finished) if finished else {}
    started, waiting, missed = await _start_pending(tx, now_us, limit, node_id, tasks, policy)
    queued_started = Counter(run.job.id for run in started)
    budget = limit - len(started)
    due = await _due_jobs(tx, now_us + ahead_us, limit, tasks)
    await tx.read_running([job.id for job in due])
    recorded: Counter[RunStatus] = Counter({RunStatus.MISSED: missed} if missed else {})
    planned_runs: list[tuple[JobRecord, PlannedRun]] = []
    for job in due:
        running = await tx.running_of(job.id) - queued_started[job.id]
        fire_plan = policy.plan_due(job, now_us, Slots(running, queued_started[job.id], budget))
        if fire_plan.pause_reason is not None:
            reason = fire_plan.pause_reason
            await breaker.set_paused(
                tx, job.id, True, _not_paused, now_us, pause_reason=reason, next_run_us=None
            )
            continue
        for planned in fire_plan.runs:
            if planned.status is RunStatus.RUNNING:
                budget -= 1
            elif planned.status is RunStatus.SCHEDULED:
                waiting = True
            else:
                recorded[planned.status] += 1
            planned_runs.append((job, planned))
        check_int64(fire_plan.next_fire_us, fire_plan.next_run_us)
        await tx.put_job(
            dataclasses.replace(
                job, next_fire_us=fire_plan.next_fire_us, next_run_us=fire_plan.next_run_us
            )
        )
    for job, run in await _record_planned(tx, planned_runs, now_us, node_id):
        if run.status is RunStatus.RUNNING:
            started.append(StartedRun(run, job, _due_of(job, run.scheduled_for_us)))
    exhausted = len(due) >= limit or len(started) >= limit
    moved = {job.id for job in due}
    next_due = None if exhausted else await _next_due(tx, now_us, tasks, moved)
    return Claim(started, recorded, exhausted, next_due, waiting, paused)


def _callable(job: JobRecord | None, tasks: frozenset[str]) -> bool:
    if job is None:
        return False
    needed = job.spec.target.task_needed
    return needed is None or needed in tasks


async def _due_jobs(tx: Tx, due_by: int, limit: int, tasks: frozenset[str]) -> list[JobRecord]:
    """The first ``limit`` jobs due by ``due_by`` that a node with ``tasks`` can call."""
    found: list[JobRecord] = []
    offset = 0
    while len(found) < limit:
        ids = await tx.read("ZRANGEBYSCORE", tx.k.due, "-inf", due_by, "LIMIT", offset, _CHUNK)
        offset += len(ids)
        for job in await tx.jobs(ids):
            if job is None or job.next_run_us is None or job.next_run_us > due_by:
                continue
            if _callable(job, tasks) and len(found) < limit:
                found.append(job)
        if len(ids) < _CHUNK:
            break
    return found


async def _record_planned(
    tx: Tx, planned_runs: list[tuple[JobRecord, PlannedRun]], now_us: int, node_id: str
) -> list[tuple[JobRecord, RunRecord]]:
    """Record the planned runs (each job as it was when planned) whose fires the ledger does
    not hold yet, in a few round trips whatever their number."""
    for _, planned in planned_runs:
        check_int64(planned.scheduled_for_us)
    fires = [(job.id, planned.scheduled_for_us, 1) for job, planned in planned_runs]
    taken = await tx.fires_taken(fires)
    seen: set[tuple[str, int, int]] = set()
    fresh: list[tuple[JobRecord, PlannedRun]] = []
    for (job, planned), fire, held in zip(planned_runs, fires, taken, strict=True):
        if not held and fire not in seen:
            seen.add(fire)
            fresh.append((job, planned))
    ids = await tx.new_ids(tx.k.run_seq, len(fresh))
    recorded = []
    for run_id, (job, planned) in zip(ids, fresh, strict=True):
        run = _planned_run(run_id, job, planned, now_us, node_id)
        tx.add_run(run)
        recorded.append((job, run))
    return recorded


def _planned_run(
    run_id: int, job: JobRecord, planned: PlannedRun, now_us: int, node_id: str
) -> RunRecord:
    """The run of a planned fire of ``job``."""
    at = planned.scheduled_for_us
    run = RunRecord(run_id, job.id, at, 1, planned.status)
    if planned.status is RunStatus.RUNNING:
        started_us = max(now_us, _due_of(job, at))
        run = dataclasses.replace(run, node_id=node_id, started_us=started_us)
    elif planned.status is RunStatus.SCHEDULED:
        run = dataclasses.replace(run, due_us=at)
    else:
        run = dataclasses.replace(run, error=planned.error, node_id=node_id, finished_us=now_us)
    return run


async def _start_pending(
    tx: Tx, now_us: int, budget: int, node_id: str, tasks: frozenset[str], policy: ClaimPolicy
) -> tuple[list[StartedRun], bool, int]:
    """Start the queued runs due as ``policy`` admits them; say whether some wait for a slot,
    and how many were too late (``missed``)."""
    pending: list[tuple[RunRecord, JobRecord]] = []
    offset = 0
    while len(pending) < budget:
        ids = await tx.read("ZRANGEBYSCORE", tx.k.queued, "-inf", now_us, "LIMIT", offset, _CHUNK)
        offset += len(ids)
        runs = [run for run in await tx.runs([int(i) for i in ids]) if run is not None]
        jobs = await tx.jobs([run.job_id for run in runs])
        for run, job in zip(runs, jobs, strict=True):
            if job is not None and _callable(job, tasks) and len(pending) < budget:
                pending.append((run, job))
        if len(ids) < _CHUNK:
            break
    await tx.read_running([job.id for _, job in pending])
    running = {job.id: await tx.running_of(job.id) for _, job in pending}
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
            gone = dataclasses.replace(run, status=RunStatus.MISSED, due_us=None)
            tx.replace_run(run, dataclasses.replace(gone, finished_us=now_us, error=admitted.error))
            missed += 1
            continue
        if admitted.status is not RunStatus.RUNNING:
            waiting = True
            continue
        begun[job.id] += 1
        new = dataclasses.replace(
            run, status=RunStatus.RUNNING, node_id=node_id, started_us=now_us, due_us=None
        )
        tx.replace_run(run, new)
        started.append(StartedRun(new, job, new.scheduled_for_us))
    return started, waiting, missed


async def finish(tx: Tx, node_id: str, finished: Sequence[FinishedRun]) -> dict[int, str]:
    """Record outcomes, fenced (see ``Store.finish_runs``), queue their retries and move their
    jobs' circuit breakers."""
    held: list[tuple[RunRecord, FinishedRun]] = []
    runs = await tx.runs([outcome.run_id for outcome in finished])
    # In the order they ended: the summaries take the last outcome written as the job's last.
    in_order = sorted(zip(runs, finished, strict=True), key=lambda pair: pair[1].finished_us)
    for run, outcome in in_order:
        if run is None or run.status is not RunStatus.RUNNING or run.node_id != node_id:
            continue  # taken over by another node: its fate is theirs now
        new = dataclasses.replace(
            run,
            status=outcome.status,
            started_us=outcome.started_us,
            finished_us=outcome.finished_us,
            http_status=outcome.http_status,
            error=outcome.error,
            response_excerpt=outcome.response_excerpt,
        )
        tx.replace_run(run, new)
        held.append((run, outcome))
    retries = [outcome.retry_due_us for _, outcome in held if outcome.retry_due_us is not None]
    for run, outcome in held:
        if outcome.retry_due_us is not None:
            await _queue(tx, run, outcome.retry_due_us)
    if retries:
        tx.notify(min(retries))
    paused = {}
    for run, outcome in held:
        if outcome.verdict is not None:
            reason = await breaker.judge(tx, run.job_id, outcome.verdict)
            if reason is not None:
                paused[run.id] = reason
    return paused


async def interrupt(
    tx: Tx, run_ids: Iterable[int], now_us: int, retries: int, policy: ClaimPolicy
) -> int:
    """Mark the running runs ``run_ids`` interrupted and queue their retries; return how many."""
    found = await tx.runs(sorted(run_ids))
    victims = [run for run in found if run is not None and run.status is RunStatus.RUNNING]
    for run in victims:
        stopped = RunStatus.INTERRUPTED
        new = dataclasses.replace(run, status=stopped, finished_us=now_us, error=_INTERRUPTED)
        tx.replace_run(run, new)
    jobs = await tx.jobs([run.job_id for run in victims])
    alive = [run for run, job in zip(victims, jobs, strict=True) if job is not None]
    for run in alive:
        if run.attempt <= retries:
            await _queue(tx, run, run.scheduled_for_us)
    given_up = {run.job_id for run in alive if run.attempt > retries}
    await breaker.rearm_probes(tx, sorted(given_up), now_us, policy)
    if victims:
        tx.notify(None)
    return len(victims)


async def _queue(tx: Tx, run: RunRecord, due_us: int) -> None:
    """Queue the next attempt of ``run``'s fire, due at ``due_us``, unless the ledger has it."""
    attempt = run.attempt + 1
    if await tx.fire_taken(run.job_id, run.scheduled_for_us, attempt):
        return
    check_int64(due_us)
    run_id = await tx.new_id(tx.k.run_seq)
    retry = RunRecord(
        run_id, run.job_id, run.scheduled_for_us, attempt, RunStatus.SCHEDULED, run.manual
    )
    tx.add_run(dataclasses.replace(retry, due_us=due_us))


def _due_of(job: JobRecord, scheduled_for_us: int) -> int:
    """A planned fire's due time: its nominal time, plus the job's jitter for the fire the job
    was waiting for (catch-up fires are due at once anyway)."""
    if scheduled_for_us == job.next_fire_us and job.next_run_us is not None:
        return job.next_run_us
    return scheduled_for_us


async def _next_due(tx: Tx, now_us: int, tasks: frozenset[str], moved: set[str]) -> int | None:
    """When the next job or queued run that a node with ``tasks`` can call falls due. The
    index still holds the ``moved`` jobs at their old times (this claim's writes are not made
    yet): they count at their new ones."""
    job_due = await _first_callable_job(tx, tasks, moved)
    run_due = await _first_callable_run(tx, now_us, tasks)
    for run in tx.queued_here:
        later = run.due_us is not None and run.due_us > now_us
        if later and _callable(await tx.job(run.job_id), tasks):
            assert run.due_us is not None
            run_due = run.due_us if run_due is None else min(run_due, run.due_us)
    new_times = [job.next_run_us for job in await tx.jobs(sorted(moved)) if job is not None]
    candidates = [at for at in (job_due, run_due, *new_times) if at is not None]
    return min(candidates) if candidates else None


async def _first_callable_job(tx: Tx, tasks: frozenset[str], moved: set[str]) -> int | None:
    offset = 0
    while True:
        ids = await tx.read("ZRANGE", tx.k.due, offset, offset + _CHUNK - 1)
        offset += len(ids)
        for job in await tx.jobs(ids):
            if job is None or job.id in moved or job.next_run_us is None:
                continue
            if _callable(job, tasks):
                return job.next_run_us
        if len(ids) < _CHUNK:
            return None


async def _first_callable_run(tx: Tx, now_us: int, tasks: frozenset[str]) -> int | None:
    offset = 0
    while True:
        ids = await tx.read(
            "ZRANGEBYSCORE", tx.k.queued, f"({now_us}", "+inf", "LIMIT", offset, _CHUNK
        )
        offset += len(ids)
        runs = [run for run in await tx.runs([int(i) for i in ids]) if run is not None]
        for run in runs:
            if run.status is RunStatus.SCHEDULED and _callable(await tx.job(run.job_id), tasks):
                return run.due_us
        if len(ids) < _CHUNK:
            return None


def _not_paused(job: JobRecord) -> bool:
    return not job.spec.paused
