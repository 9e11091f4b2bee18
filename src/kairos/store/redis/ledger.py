"""The run ledger's changes as ``Tx`` transactions: manual runs queued, outcomes recorded with
their retries, runs interrupted. Each mirrors the memory store's (``store/memory/ledger.py``),
over Redis's indexes. The claim is ``claim.Claimer``'s."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from kairos.errors import JobNotFound, RunEnded, RunNotFound
from kairos.identity import Actor
from kairos.models import RunRecord, RunStatus
from kairos.store.claims import ClaimPolicy, FinishedRun
from kairos.store.redis import breaker
from kairos.store.redis.jobs import check_int64
from kairos.store.redis.tx import Tx

__all__ = ["add_manual_run", "cancel_run", "finish", "interrupt"]

_INTERRUPTED = "the node running it stopped before the call finished"


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
