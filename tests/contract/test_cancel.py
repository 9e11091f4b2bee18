"""Cancelling a run (see ``Store.cancel_run``)."""

from __future__ import annotations

import pytest

from kairos.errors import RunEnded, RunNotFound
from kairos.identity import Actor
from kairos.models import RunStatus
from kairos.store import FinishedRun, Store
from tests.contract.test_store import NOW, S, every_minute, record

OPS = Actor("ops", NOW + 5 * S)


async def test_a_queued_run_is_cancelled_and_never_started(store: Store) -> None:
    await store.insert_job(record("a", None))
    queued = await store.add_manual_run("a", NOW)
    cancelled = await store.cancel_run(queued.id, by=OPS)
    assert (cancelled.status, cancelled.finished_us) == (RunStatus.CANCELLED, NOW + 5 * S)
    assert cancelled.error == "cancelled by ops"
    assert (await store.claim_due(NOW + 10 * S, 10, "n", every_minute)).started == []
    assert await store.get_run(queued.id) == cancelled


async def test_a_running_run_is_cancelled_and_its_late_outcome_left_out(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    run = (await store.claim_due(NOW, 1, "n", every_minute)).started[0].run
    other = (await store.add_manual_run("a", NOW + S)).id
    await store.cancel_run(run.id, by=OPS)
    assert await store.cancelled_among([run.id, other, 999]) == {run.id}
    late = FinishedRun(run.id, RunStatus.FAILED, NOW, NOW + 6 * S, retry_due_us=NOW + 7 * S)
    await store.finish_runs("n", [late])
    assert (await store.get_run(run.id)).status is RunStatus.CANCELLED
    retries = await store.list_runs(job_id="a", status=RunStatus.SCHEDULED, before_id=None, limit=9)
    assert [r.id for r in retries] == [other]  # no retry of the cancelled run


async def test_an_ended_or_unknown_run_cannot_be_cancelled(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    run = (await store.claim_due(NOW, 1, "n", every_minute)).started[0].run
    await store.finish_runs("n", [FinishedRun(run.id, RunStatus.SUCCEEDED, NOW, NOW + S)])
    with pytest.raises(RunEnded):
        await store.cancel_run(run.id, by=OPS)
    with pytest.raises(RunNotFound):
        await store.cancel_run(12345, by=OPS)
    assert [e.action for e in await store.list_audit()] == []


async def test_a_cancel_is_audited(store: Store) -> None:
    await store.insert_job(record("a", None))
    queued = await store.add_manual_run("a", NOW)
    await store.cancel_run(queued.id, by=OPS)
    [entry] = [e for e in await store.list_audit() if e.action == "run.cancel"]
    assert (entry.actor, entry.target) == ("ops", "a")
