"""The run ledger's summaries (``RunStats``): they always agree with what ``list_runs`` shows."""

from __future__ import annotations

from collections import Counter

from kairos.identity import Actor
from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store import FinishedRun, FirePlan, PlannedRun, Slots, Store
from kairos.store.summaries import ENDED_STATUSES, RUN_COUNT_MINUTE_US
from tests.contract.test_store import NOW, S, every_minute, failing, record
from tests.support.policies import PlanPolicy

MINUTE = RUN_COUNT_MINUTE_US
ADMIN = Actor("admin", NOW)


def plan_skip(job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
    """The due fire is recorded ``skipped``, and the job moves on a minute."""
    assert job.next_fire_us is not None
    nxt = job.next_fire_us + 60 * S
    return FirePlan([PlannedRun(job.next_fire_us, RunStatus.SKIPPED)], nxt, nxt)


skip_all = PlanPolicy(plan_skip)


async def listed(store: Store, job_id: str) -> list[RunRecord]:
    return await store.list_runs(job_id=job_id, status=None, before_id=None, limit=1000)


async def assert_counts_agree(store: Store, *job_ids: str) -> None:
    """Each job's counts are those of its ended runs as ``list_runs`` shows them."""
    counted = await store.job_run_counts(job_ids)
    for job_id in job_ids:
        shown = Counter(run.status for run in await listed(store, job_id))
        assert counted[job_id].counts == {s: shown[s] for s in ENDED_STATUSES}, job_id


async def start(store: Store, job_id: str, now_us: int, node: str = "n") -> RunRecord:
    """Queue a manual run of the job and start it."""
    await store.add_manual_run(job_id, now_us)
    claim = await store.claim_due(now_us, 10, node, every_minute)
    (started,) = [s.run for s in claim.started if s.run.job_id == job_id]
    return started


async def finish(store: Store, run: RunRecord, status: RunStatus, at_us: int) -> None:
    await store.finish_runs("n", [FinishedRun(run.id, status, at_us, at_us)])


async def test_every_way_a_run_ends_is_counted_for_its_job_and_its_minute(store: Store) -> None:
    await store.insert_job(record("a", None, paused=True))
    await finish(store, await start(store, "a", NOW), RunStatus.SUCCEEDED, NOW + S)
    await finish(store, await start(store, "a", NOW + 1), RunStatus.FAILED, NOW + 2 * S)
    running = await start(store, "a", NOW + 2)
    await store.cancel_run(running.id, by=ADMIN)
    await finish(store, running, RunStatus.SUCCEEDED, NOW + 3 * S)  # late: left out
    queued = await store.add_manual_run("a", NOW + 3)
    await store.cancel_run(queued.id, by=ADMIN)
    await start(store, "a", NOW + 4)
    assert await store.interrupt_running("n", retries=1, policy=every_minute) == 1
    await store.insert_job(record("b", NOW))
    await store.claim_due(NOW + 5, 10, "n", skip_all)  # a fire of "b" recorded skipped
    await assert_counts_agree(store, "a", "b")
    counts = (await store.job_run_counts(["a"]))["a"].counts
    assert counts[RunStatus.CANCELLED] == 2
    assert counts[RunStatus.INTERRUPTED] == 1
    summary = await store.run_summary([0], 10)  # the interrupt is by the store's clock
    (ended,) = summary.ended
    assert ended == {
        RunStatus.SUCCEEDED: 1,
        RunStatus.FAILED: 1,
        RunStatus.MISSED: 0,
        RunStatus.SKIPPED: 1,
        RunStatus.INTERRUPTED: 1,
        RunStatus.CANCELLED: 2,
    }
    assert (summary.running, summary.queued) == (1, 0)  # the retry, started by the last claim


async def test_ended_runs_are_counted_per_minute_and_old_minutes_purged(store: Store) -> None:
    await store.insert_job(record("a", None, paused=True))
    for i, at_us in enumerate((NOW, NOW + MINUTE, NOW + 2 * MINUTE)):
        await finish(store, await start(store, "a", NOW + i), RunStatus.SUCCEEDED, at_us)
    since = [NOW, NOW + MINUTE, NOW + 2 * MINUTE + MINUTE - 1, NOW + 3 * MINUTE]
    summary = await store.run_summary(since, 10)
    assert [counts[RunStatus.SUCCEEDED] for counts in summary.ended] == [3, 2, 1, 0]
    await store.purge_run_counts(NOW + MINUTE + 5)
    summary = await store.run_summary([NOW - MINUTE], 10)
    assert summary.ended[0][RunStatus.SUCCEEDED] == 2
    await assert_counts_agree(store, "a")  # the job's own counts are not the minutes'


async def test_a_job_is_failing_while_its_last_call_failed(store: Store) -> None:
    for job_id in ("a", "b", "c"):
        await store.insert_job(record(job_id, None, paused=True))
    await finish(store, await start(store, "a", NOW), RunStatus.FAILED, NOW + 1 * S)
    await finish(store, await start(store, "b", NOW), RunStatus.INTERRUPTED, NOW + 2 * S)
    await finish(store, await start(store, "c", NOW), RunStatus.FAILED, NOW + 3 * S)
    await finish(store, await start(store, "c", NOW + 1), RunStatus.SUCCEEDED, NOW + 4 * S)
    summary = await store.run_summary([], 10)
    assert (summary.failing, summary.failing_jobs) == (2, ["b", "a"])  # latest failure first
    assert (await store.run_summary([], 1)).failing_jobs == ["b"]
    # A cancelled or skipped run says nothing of the target: "a" is still failing.
    queued = await store.add_manual_run("a", NOW + 5)
    await store.cancel_run(queued.id, by=ADMIN)
    c = await store.job_run_counts(["a", "c"])
    assert (c["a"].last_status, c["a"].last_ended_us) == (RunStatus.FAILED, NOW + S)
    assert c["c"].last_status is RunStatus.SUCCEEDED
    await finish(store, await start(store, "a", NOW + 6), RunStatus.SUCCEEDED, NOW + 9 * S)
    assert (await store.run_summary([], 10)).failing_jobs == ["b"]


async def test_two_outcomes_of_a_job_in_one_batch_leave_the_later_as_its_last(
    store: Store,
) -> None:
    await store.insert_job(record("a", None, paused=True, max_instances=2))
    first = await start(store, "a", NOW)
    second = await start(store, "a", NOW + 1)
    await store.finish_runs(
        "n",
        [
            FinishedRun(second.id, RunStatus.FAILED, NOW, NOW + 5 * S),
            FinishedRun(first.id, RunStatus.SUCCEEDED, NOW, NOW + 4 * S),
        ],
    )
    counts = (await store.job_run_counts(["a"]))["a"]
    assert (counts.last_status, counts.last_ended_us) == (RunStatus.FAILED, NOW + 5 * S)
    await assert_counts_agree(store, "a")


async def test_purges_take_runs_off_their_jobs_counts(store: Store) -> None:
    for job_id in ("a", "b"):
        await store.insert_job(record(job_id, None, paused=True))
    for i in range(5):
        status = RunStatus.FAILED if i % 2 else RunStatus.SUCCEEDED
        await finish(store, await start(store, "a", NOW + i), status, NOW + i * S)
        await finish(store, await start(store, "b", NOW + i), status, NOW + i * S)
    assert await store.purge_runs([("a", 2, None)]) == 3
    await assert_counts_agree(store, "a", "b")
    while await store.purge_expired_runs(NOW + 3 * S, 100):
        pass
    assert [r.finished_us for r in await listed(store, "b")] == [NOW + 4 * S, NOW + 3 * S]
    await assert_counts_agree(store, "a", "b")
    # The last call is the last call, whether its run is kept or not.
    assert (await store.job_run_counts(["b"]))["b"].last_status is RunStatus.SUCCEEDED


async def test_a_deleted_job_keeps_its_counts_but_not_its_failing(store: Store) -> None:
    await store.insert_job(record("a", None, paused=True))
    await finish(store, await start(store, "a", NOW), RunStatus.FAILED, NOW + S)
    await store.add_manual_run("a", NOW + 1)  # skipped by the delete
    await store.delete_job("a")
    await assert_counts_agree(store, "a")
    summary = await store.run_summary([NOW - MINUTE], 10)
    assert (summary.failing, summary.failing_jobs) == (0, [])
    assert (await store.job_run_counts(["a"]))["a"].last_status is None
    # Created again, the job goes on from the history its id has.
    await store.insert_job(record("a", None, paused=True))
    await finish(store, await start(store, "a", NOW + 2), RunStatus.FAILED, NOW + 2 * S)
    await assert_counts_agree(store, "a")
    assert (await store.run_summary([], 10)).failing_jobs == ["a"]
    await store.delete_job("a", purge_runs=True)
    await assert_counts_agree(store, "a")
    # Only the run skipped by the first delete is left (it never finished: it is not purged).
    left = dict.fromkeys(ENDED_STATUSES, 0) | {RunStatus.SKIPPED: 1}
    assert (await store.job_run_counts(["a"]))["a"].counts == left


async def test_tripped_jobs_are_counted(store: Store) -> None:
    for job_id in ("a", "b"):
        await store.insert_job(record(job_id, NOW))
    limit_1 = failing(limit=1, next_probe_us=NOW + 30 * S)
    run = (await store.claim_due(NOW, 10, "n", every_minute)).started
    await store.finish_runs(
        "n",
        [FinishedRun(s.run.id, RunStatus.FAILED, NOW, NOW, verdict=limit_1) for s in run],
    )
    summary = await store.run_summary([], 1)
    assert (summary.tripped, summary.tripped_jobs) == (2, ["a"])
    assert summary.failing == 2
    job = await store.get_job("b")
    resumed = JobRecord("b", job.spec.model_copy(update={"paused": False}), NOW, NOW, NOW, NOW)
    await store.update_job(resumed, expected_updated_us=job.updated_us)
    assert (await store.run_summary([], 10)).tripped_jobs == ["a"]


async def test_imported_runs_are_counted(store: Store) -> None:
    await store.insert_job(record("a", None, paused=True))
    runs = [
        RunRecord(0, "a", NOW + i, 1, status, finished_us=NOW + i * S)
        for i, status in enumerate([RunStatus.FAILED, RunStatus.SUCCEEDED, RunStatus.MISSED])
    ]
    await store.import_runs(runs)
    await assert_counts_agree(store, "a")
    counts = await store.job_run_counts(["a", "none"])
    assert counts["a"].last_status is RunStatus.SUCCEEDED
    assert counts["none"].counts == dict.fromkeys(ENDED_STATUSES, 0)


async def test_runs_a_claim_ends_are_counted_in_its_minute(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    (run,) = [s.run for s in (await store.claim_due(NOW, 10, "n", every_minute)).started]
    retry = FinishedRun(run.id, RunStatus.FAILED, NOW, NOW + S, retry_due_us=NOW + S)
    await store.finish_runs("n", [retry])
    # Minutes later: the retry is too late (missed) and the fire due is skipped by the plan.
    later = NOW + 5 * MINUTE + 7
    claim = await store.claim_due(later, 10, "n", skip_all)
    assert claim.recorded == {RunStatus.MISSED: 1, RunStatus.SKIPPED: 1}
    await assert_counts_agree(store, "a")
    summary = await store.run_summary([NOW, NOW + 5 * MINUTE, NOW + 6 * MINUTE], 10)
    ended = [
        (c[RunStatus.FAILED], c[RunStatus.MISSED], c[RunStatus.SKIPPED]) for c in summary.ended
    ]
    assert ended == [(1, 1, 1), (0, 1, 1), (0, 0, 0)]
    # Neither says anything of the target: the failed call is still the job's last.
    counts = (await store.job_run_counts(["a"]))["a"]
    assert (counts.last_status, counts.last_ended_us) == (RunStatus.FAILED, NOW + S)
    assert (await store.run_summary([], 10)).failing_jobs == ["a"]


async def test_outcomes_recorded_with_a_claim_are_counted_as_those_recorded_alone(
    store: Store,
) -> None:
    for job_id in ("a", "b"):
        await store.insert_job(record(job_id, None, paused=True, max_instances=3))
    a1, a2, a3 = [await start(store, "a", NOW + i) for i in range(3)]
    b1 = await start(store, "b", NOW)
    await finish(store, a1, RunStatus.SUCCEEDED, NOW + S)
    outcomes = [  # the later of a's two first, as the two may come
        FinishedRun(a3.id, RunStatus.FAILED, NOW, NOW + MINUTE + 2 * S),
        FinishedRun(a2.id, RunStatus.SUCCEEDED, NOW, NOW + MINUTE + S),
        FinishedRun(b1.id, RunStatus.INTERRUPTED, NOW, NOW + 2 * MINUTE),
    ]
    await store.claim_due(NOW + 3 * MINUTE, 10, "n", every_minute, finished=outcomes)
    await assert_counts_agree(store, "a", "b")
    counts = await store.job_run_counts(["a", "b"])
    assert (counts["a"].last_status, counts["a"].last_ended_us) == (
        RunStatus.FAILED,
        NOW + MINUTE + 2 * S,
    )
    assert counts["b"].last_status is RunStatus.INTERRUPTED
    summary = await store.run_summary([NOW, NOW + MINUTE, NOW + 2 * MINUTE], 10)
    ended = [
        (c[RunStatus.SUCCEEDED], c[RunStatus.FAILED], c[RunStatus.INTERRUPTED])
        for c in summary.ended
    ]
    assert ended == [(2, 1, 1), (1, 1, 1), (0, 0, 1)]
    assert (summary.failing, summary.failing_jobs) == (2, ["b", "a"])
    # A success through a claim ends the failing.
    a4 = await start(store, "a", NOW + 3)
    done = [FinishedRun(a4.id, RunStatus.SUCCEEDED, NOW, NOW + 4 * MINUTE)]
    await store.claim_due(NOW + 4 * MINUTE, 10, "n", every_minute, finished=done)
    assert (await store.run_summary([], 10)).failing_jobs == ["b"]


async def test_a_jobs_last_call_is_the_one_that_ended_last_of_a_claims_outcomes(
    store: Store,
) -> None:
    """Outcomes that ask for a retry travel with plain ones: whichever ended last is the last
    call, whatever the order given."""
    for job_id, retried_last in (("a", True), ("b", False)):
        await store.insert_job(record(job_id, None, paused=True, max_instances=2))
        first, second = await start(store, job_id, NOW), await start(store, job_id, NOW + 1)
        failed_us, succeeded_us = (NOW + 2 * S, NOW + S) if retried_last else (NOW + S, NOW + 2 * S)
        outcomes = [
            FinishedRun(second.id, RunStatus.SUCCEEDED, NOW, succeeded_us),
            FinishedRun(first.id, RunStatus.FAILED, NOW, failed_us, retry_due_us=NOW + 9 * S),
        ]
        await store.claim_due(NOW + 3 * S, 10, "n", every_minute, finished=outcomes)
    counts = await store.job_run_counts(["a", "b"])
    assert (counts["a"].last_status, counts["a"].last_ended_us) == (RunStatus.FAILED, NOW + 2 * S)
    assert (counts["b"].last_status, counts["b"].last_ended_us) == (
        RunStatus.SUCCEEDED,
        NOW + 2 * S,
    )
    assert (await store.run_summary([], 10)).failing_jobs == ["a"]
    await assert_counts_agree(store, "a", "b")
