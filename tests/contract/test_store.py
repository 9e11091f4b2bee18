"""What every store guarantees (see ``kairos.store.base.Store``)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from sqlalchemy.exc import StatementError

from kairos.engine.policies import Planner
from kairos.errors import Conflict, JobExists, JobNotFound, RunNotFound
from kairos.identity import Actor
from kairos.models import HistoryPolicy, JobRecord, JobSpec, JobState, RunStatus
from kairos.store import (
    FinishedRun,
    FirePlan,
    JobQuery,
    PlannedRun,
    Slots,
    Store,
    Verdict,
    store_for_url,
)
from tests.support.policies import PlanPolicy

NOW = 1_800_000_000_000_000
S = 1_000_000
SPEC = JobSpec.model_validate(
    {"trigger": {"type": "interval", "seconds": 60}, "target": {"url": "http://127.0.0.1:9/"}}
)


def record(job_id: str = "a", next_us: int | None = NOW, **changes: Any) -> JobRecord:
    spec = SPEC.model_copy(update=changes) if changes else SPEC
    return JobRecord(job_id, spec, next_us, next_us, NOW - S, NOW - S)


def plan_every_minute(job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
    """A plan that starts the due fire if there is room and moves on a minute."""
    assert job.next_fire_us is not None
    if slots.budget <= 0:
        return FirePlan([], job.next_fire_us, job.next_run_us)
    room = slots.running + slots.started < job.spec.max_instances
    status = RunStatus.RUNNING if room else RunStatus.SKIPPED
    nxt = job.next_fire_us + 60 * S
    return FirePlan([PlannedRun(job.next_fire_us, status)], nxt, nxt)


every_minute = PlanPolicy(plan_every_minute)


async def test_insert_get_and_duplicate_id(store: Store) -> None:
    await store.insert_job(record("a"))
    got = await store.get_job("a")
    assert got.spec == SPEC
    assert got.next_run_us == NOW
    with pytest.raises(JobExists):
        await store.insert_job(record("a"))


async def test_unknown_job_raises_not_found_everywhere(store: Store) -> None:
    with pytest.raises(JobNotFound):
        await store.get_job("nope")
    with pytest.raises(JobNotFound):
        await store.delete_job("nope")
    with pytest.raises(JobNotFound):
        await store.add_manual_run("nope", NOW)
    with pytest.raises(JobNotFound):
        await store.update_job(record("nope"), expected_updated_us=NOW - S)
    with pytest.raises(RunNotFound):
        await store.get_run(12345)


async def test_upsert_creates_then_replaces_keeping_created_time(store: Store) -> None:
    assert await store.upsert_jobs([record("a")]) == {"a": NOW - S}
    replaced = JobRecord("a", SPEC.model_copy(update={"max_instances": 3}), None, None, NOW, NOW)
    added = JobRecord("b", SPEC, NOW, NOW, NOW, NOW)
    assert await store.upsert_jobs([replaced, added]) == {"a": NOW - S, "b": NOW}
    got = await store.get_job("a")
    assert got.spec.max_instances == 3
    assert got.created_us == NOW - S
    assert got.updated_us == NOW
    assert got.next_run_us is None
    assert (await store.get_job("b")).next_run_us == NOW


async def test_a_failed_upsert_batch_writes_nothing(store: Store) -> None:
    await store.upsert_jobs([record("a")])
    too_big = record("c", 2**64)  # beyond a 64-bit column: the database refuses the row
    changed = JobRecord("a", SPEC.model_copy(update={"max_instances": 3}), NOW, NOW, NOW, NOW)
    with pytest.raises((OverflowError, StatementError)):  # as the driver or database refuses
        await store.upsert_jobs([changed, record("b"), too_big])
    assert [job.id for job in await store.list_jobs(JobQuery(), 10)] == ["a"]
    assert (await store.get_job("a")).spec.max_instances == 1


async def test_update_refuses_a_stale_version(store: Store) -> None:
    await store.insert_job(record("a"))
    newer = JobRecord("a", SPEC, NOW, NOW, NOW - S, NOW)
    await store.update_job(newer, expected_updated_us=NOW - S)
    with pytest.raises(Conflict):
        await store.update_job(newer, expected_updated_us=NOW - S)


async def test_list_jobs_pages_by_id(store: Store) -> None:
    for job_id in ["c", "a", "b", "d"]:
        await store.insert_job(record(job_id))
    first = await store.list_jobs(JobQuery(), 3)
    assert [j.id for j in first] == ["a", "b", "c"]
    rest = await store.list_jobs(JobQuery(after=(None, "c")), 3)
    assert [j.id for j in rest] == ["d"]


async def ids(store: Store, limit: int = 100, **query: Any) -> list[str]:
    return [job.id for job in await store.list_jobs(JobQuery(**query), limit)]


async def test_ids_that_differ_only_in_case_are_different_jobs(store: Store) -> None:
    """Also where the database's own collation ignores case (MariaDB's, as a rule)."""
    await store.insert_job(record("report"))
    await store.insert_job(record("Report"))
    await store.upsert_jobs([record("REPORT"), record("report", NOW + S)])
    assert await ids(store) == ["REPORT", "Report", "report"]
    assert (await store.get_job("Report")).next_run_us == NOW
    assert (await store.get_job("report")).next_run_us == NOW + S
    with pytest.raises(JobNotFound):
        await store.get_job("rEPORT")


async def test_list_jobs_filters_by_id_prefix_state_and_tag(store: Store) -> None:
    tagged = SPEC.model_copy(update={"tags": ["etl", "nightly"]})
    await store.insert_job(JobRecord("etl.load", tagged, NOW, NOW, NOW, NOW))
    await store.insert_job(JobRecord("etl_x", SPEC, NOW, NOW, NOW, NOW))
    await store.insert_job(JobRecord("Etl.upper", tagged, NOW, NOW, NOW, NOW))
    await store.insert_job(record("done", None))
    paused = SPEC.model_copy(update={"paused": True, "tags": ["etl"]})
    await store.insert_job(JobRecord("held", paused, None, None, NOW, NOW))
    assert await ids(store, prefix="etl") == ["etl.load", "etl_x"]  # case and "_" taken literally
    assert await ids(store, prefix="etl.") == ["etl.load"]
    assert await ids(store, prefix="etl_") == ["etl_x"]
    assert await ids(store, state=JobState.SCHEDULED) == ["Etl.upper", "etl.load", "etl_x"]
    assert await ids(store, state=JobState.PAUSED) == ["held"]
    assert await ids(store, state=JobState.FINISHED) == ["done"]
    assert await ids(store, tag="etl") == ["Etl.upper", "etl.load", "held"]
    assert await ids(store, tag="etl", state=JobState.PAUSED) == ["held"]
    assert await ids(store, tag="etl", prefix="etl") == ["etl.load"]
    assert await ids(store, tag="nope") == []


async def test_tags_follow_replacements_and_deletes(store: Store) -> None:
    tagged = JobRecord("a", SPEC.model_copy(update={"tags": ["x"]}), NOW, NOW, NOW, NOW)
    await store.insert_job(tagged)
    retagged = JobRecord("a", SPEC.model_copy(update={"tags": ["y"]}), NOW, NOW, NOW, NOW + 1)
    await store.upsert_jobs([retagged])
    assert (await ids(store, tag="x"), await ids(store, tag="y")) == ([], ["a"])
    untagged = JobRecord("a", SPEC, NOW, NOW, NOW, NOW + 2)
    await store.update_job(untagged, expected_updated_us=NOW + 1)
    assert await ids(store, tag="y") == []
    await store.upsert_jobs([retagged])
    await store.delete_job("a")
    await store.insert_job(JobRecord("a", SPEC, NOW, NOW, NOW, NOW))
    assert await ids(store, tag="y") == []


async def test_list_jobs_by_next_run_pages_soonest_first_then_jobs_without_one(
    store: Store,
) -> None:
    for job_id, due in [("a", NOW + 3), ("b", NOW + 1), ("c", None), ("d", NOW + 1), ("e", None)]:
        await store.insert_job(record(job_id, due))
    order = await ids(store, by_next_run=True)
    assert order == ["b", "d", "a", "c", "e"]
    pages, after = [], None
    while True:
        page = await store.list_jobs(JobQuery(by_next_run=True, after=after), 2)
        if not page:
            break
        pages.append([job.id for job in page])
        after = (page[-1].next_run_us, page[-1].id)
    assert pages == [["b", "d"], ["a", "c"], ["e"]]
    assert await ids(store, by_next_run=True, after=(NOW + 1, "b")) == ["d", "a", "c", "e"]


async def test_claim_starts_due_fires_once_and_advances_the_job(store: Store) -> None:
    await store.insert_job(record("due", NOW))
    await store.insert_job(record("later", NOW + 10 * S))
    claim = await store.claim_due(NOW, 10, "node-1", every_minute)
    assert [(s.run.job_id, s.run.scheduled_for_us) for s in claim.started] == [("due", NOW)]
    assert claim.started[0].run.status is RunStatus.RUNNING
    assert claim.started[0].job.spec == SPEC
    assert claim.exhausted is False
    assert claim.next_due_us == NOW + 10 * S
    assert (await store.get_job("due")).next_run_us == NOW + 60 * S
    again = await store.claim_due(NOW, 10, "node-1", every_minute)
    assert again.started == []
    runs = await store.list_runs(job_id="due", status=None, before_id=None, limit=10)
    assert [(r.status, r.node_id, r.started_us) for r in runs] == [
        (RunStatus.RUNNING, "node-1", NOW)
    ]


async def test_claim_ahead_takes_fires_due_within_the_window_to_start_on_time(
    store: Store,
) -> None:
    await store.insert_job(record("soon", NOW + 30_000))
    await store.insert_job(JobRecord("jittered", SPEC, NOW + 10_000, NOW + 45_000, NOW, NOW))
    await store.insert_job(record("later", NOW + 60_000))
    claim = await store.claim_due(NOW, 10, "n", every_minute, ahead_us=50_000)
    due = {s.job.id: s.due_us for s in claim.started}
    assert due == {"soon": NOW + 30_000, "jittered": NOW + 45_000}
    assert claim.next_due_us == NOW + 60_000
    runs = await store.list_runs(job_id="soon", status=None, before_id=None, limit=5)
    assert runs[0].started_us == NOW + 30_000  # when the call is due, not when it was claimed


async def test_a_queued_run_goes_before_a_fire_of_its_job_claimed_ahead(store: Store) -> None:
    await store.insert_job(record("a", NOW + 30_000))
    queued = await store.add_manual_run("a", NOW)

    def ahead_aware(job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
        # The queued run started first and holds the job's one slot.
        assert (slots.running, slots.started) == (0, 1)
        return FirePlan([], job.next_fire_us, job.next_run_us)

    claim = await store.claim_due(NOW, 10, "n", PlanPolicy(ahead_aware), ahead_us=50_000)
    assert [s.run.id for s in claim.started] == [queued.id]


async def test_claim_respects_its_limit_and_says_more_is_due(store: Store) -> None:
    for i in range(5):
        await store.insert_job(record(f"j{i}", NOW - i))
    claim = await store.claim_due(NOW, 3, "n", every_minute)
    assert len(claim.started) == 3
    assert claim.exhausted is True
    claim = await store.claim_due(NOW, 3, "n", every_minute)
    assert len(claim.started) == 2
    assert claim.exhausted is False


async def test_claim_counts_running_runs_for_max_instances(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    await store.claim_due(NOW, 10, "n", every_minute)
    claim = await store.claim_due(NOW + 60 * S, 10, "n", every_minute)
    assert claim.started == []
    assert claim.recorded == {RunStatus.SKIPPED: 1}
    runs = await store.list_runs(job_id="a", status=RunStatus.SKIPPED, before_id=None, limit=5)
    assert [r.scheduled_for_us for r in runs] == [NOW + 60 * S]


async def test_outcomes_passed_with_a_claim_count_before_it(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    [first] = (await store.claim_due(NOW, 10, "n", every_minute)).started
    done = FinishedRun(first.run.id, RunStatus.SUCCEEDED, NOW, NOW + 1)
    claim = await store.claim_due(NOW + 60 * S, 10, "n", every_minute, finished=[done])
    assert len(claim.started) == 1  # not skipped: the first run no longer counts as running
    assert (await store.get_run(first.run.id)).status is RunStatus.SUCCEEDED


async def test_concurrent_claims_never_duplicate_a_fire(store: Store) -> None:
    for i in range(50):
        await store.insert_job(record(f"j{i}", NOW))
    claims = await asyncio.gather(
        *(store.claim_due(NOW, 50, f"n{i}", every_minute) for i in range(4))
    )
    started = [(s.run.job_id, s.run.scheduled_for_us) for c in claims for s in c.started]
    assert len(started) == 50
    assert len(set(started)) == 50


async def test_a_claim_that_fails_half_way_changes_nothing(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    await store.insert_job(record("b", NOW + 1))
    [first] = (await store.claim_due(NOW, 1, "n", every_minute)).started

    def plan_then_fail(job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
        if job.id == "b":
            raise RuntimeError("a plan that cannot be made")
        return plan_every_minute(job, now_us, slots)

    done = FinishedRun(first.run.id, RunStatus.SUCCEEDED, NOW, NOW + 1)
    with pytest.raises(RuntimeError):
        await store.claim_due(NOW + 60 * S, 10, "n", PlanPolicy(plan_then_fail), finished=[done])
    # Neither the outcome, nor job "a"'s fire planned before "b" failed, nor its move, stayed.
    assert (await store.get_run(first.run.id)).status is RunStatus.RUNNING
    assert (await store.get_job("a")).next_run_us == NOW + 60 * S
    assert (await store.get_job("b")).next_run_us == NOW + 1
    assert len(await store.list_runs(job_id=None, status=None, before_id=None, limit=9)) == 1


async def test_finish_records_the_outcome(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    run = (await store.claim_due(NOW, 1, "n", every_minute)).started[0].run
    done = FinishedRun(run.id, RunStatus.FAILED, NOW + 1, NOW + 5, 503, "HTTP 503", "busy")
    await store.finish_runs("n", [done])
    got = await store.get_run(run.id)
    assert (got.status, got.finished_us, got.http_status, got.error, got.response_excerpt) == (
        RunStatus.FAILED,
        NOW + 5,
        503,
        "HTTP 503",
        "busy",
    )


async def test_a_batch_of_outcomes_is_recorded_as_given_for_the_runs_still_held(
    store: Store,
) -> None:
    """One call records many runs at once (in one statement on a server): each keeps its own
    values, whatever its text holds, and a run another node holds now is left alone."""
    for job_id in ("a", "b", "c", "d"):
        await store.insert_job(record(job_id, NOW))
    claim = await store.claim_due(NOW, 3, "n", every_minute)
    a, b, c = sorted((s.run for s in claim.started), key=lambda run: run.job_id)
    taken = (await store.claim_due(NOW, 1, "other", every_minute)).started[0].run
    text = "quote ' \" \\ back, tab\t, line\n, accents éü, symbol ☃, emoji 🛰, percent %s %(x)s"
    done = [
        FinishedRun(a.id, RunStatus.FAILED, NOW + 1, NOW + 5, 500, text, "x" * 5000),
        FinishedRun(b.id, RunStatus.FAILED, None, NOW + 6, None, "refused", None),
        FinishedRun(c.id, RunStatus.SUCCEEDED, NOW + 2, NOW + 7, 204, None, ""),
        FinishedRun(taken.id, RunStatus.SUCCEEDED, NOW + 3, NOW + 8, 200),
    ]
    await store.finish_runs("n", done)
    for finished in done[:3]:
        got = await store.get_run(finished.run_id)
        assert (
            got.status,
            got.started_us,
            got.finished_us,
            got.http_status,
            got.error,
            got.response_excerpt,
        ) == (
            finished.status,
            finished.started_us,
            finished.finished_us,
            finished.http_status,
            finished.error,
            finished.response_excerpt,
        )
    assert (await store.get_run(taken.id)).status is RunStatus.RUNNING
    counts = await store.job_run_counts(["a", "b", "c", "d"])
    assert [counts[j].last_status for j in "abcd"] == [
        RunStatus.FAILED,
        RunStatus.FAILED,
        RunStatus.SUCCEEDED,
        None,
    ]


async def test_manual_runs_queue_then_start_on_claim(store: Store) -> None:
    await store.insert_job(record("a", None, paused=True))
    first = await store.add_manual_run("a", NOW)
    second = await store.add_manual_run("a", NOW)
    assert first.status is RunStatus.SCHEDULED
    assert second.scheduled_for_us == NOW + 1  # the ledger key stays unique
    claim = await store.claim_due(NOW + 1, 10, "n", every_minute)
    assert [s.run.id for s in claim.started] == [first.id]
    assert claim.started[0].run.manual is True
    # max_instances 1: the second waits for the first to finish, neither skipped nor lost.
    assert claim.waiting_for_slot is True
    assert (await store.get_run(second.id)).status is RunStatus.SCHEDULED
    assert claim.next_due_us is None  # waiting for a slot, not for a time
    done = FinishedRun(first.id, RunStatus.SUCCEEDED, NOW, NOW + 2)
    after = await store.claim_due(NOW + 3, 10, "n", every_minute, finished=[done])
    assert [s.run.id for s in after.started] == [second.id]
    assert after.waiting_for_slot is False


async def test_a_catch_up_backlog_over_max_instances_queues_and_runs_one_by_one(
    store: Store,
) -> None:
    await store.insert_job(record("a", NOW, coalesce=False, misfire_grace_time=None))
    claim = await store.claim_due(NOW + 150 * S, 10, "n", Planner())
    assert [s.run.scheduled_for_us for s in claim.started] == [NOW]
    assert claim.waiting_for_slot is True
    queued = await store.list_runs(job_id="a", status=RunStatus.SCHEDULED, before_id=None, limit=9)
    assert sorted(r.scheduled_for_us for r in queued) == [NOW + 60 * S, NOW + 120 * S]
    run = claim.started[0].run
    done = FinishedRun(run.id, RunStatus.SUCCEEDED, NOW + 150 * S, NOW + 151 * S)
    after = await store.claim_due(NOW + 152 * S, 10, "n", Planner(), finished=[done])
    assert [s.run.scheduled_for_us for s in after.started] == [NOW + 60 * S]


async def test_a_queued_fire_past_its_grace_is_missed_not_started(store: Store) -> None:
    await store.insert_job(record("a", NOW, coalesce=False, misfire_grace_time=100))
    first = (await store.claim_due(NOW + 60 * S, 10, "n", Planner())).started[0].run
    [queued] = await store.list_runs(
        job_id="a", status=RunStatus.SCHEDULED, before_id=None, limit=9
    )
    done = FinishedRun(first.id, RunStatus.SUCCEEDED, NOW + 60 * S, NOW + 170 * S)
    late = await store.claim_due(NOW + 170 * S, 10, "n", Planner(), finished=[done])
    assert [s.run.scheduled_for_us for s in late.started] == [NOW + 120 * S]  # the next fire
    missed = await store.get_run(queued.id)
    assert missed.status is RunStatus.MISSED
    assert "misfire_grace_time" in (missed.error or "")


async def test_a_fire_due_with_a_retry_queues_behind_it_instead_of_being_skipped(
    store: Store,
) -> None:
    await store.insert_job(record("a", NOW))
    cut = (await store.claim_due(NOW, 10, "n1", Planner())).started[0].run
    await store.interrupt_running(
        "n1", retries=1, policy=every_minute
    )  # retried as attempt 2, queued
    claim = await store.claim_due(NOW + 60 * S, 10, "n2", Planner())
    assert [(s.run.scheduled_for_us, s.run.attempt) for s in claim.started] == [
        (cut.scheduled_for_us, 2)
    ]
    [behind] = await store.list_runs(
        job_id="a", status=RunStatus.SCHEDULED, before_id=None, limit=9
    )
    assert (behind.scheduled_for_us, behind.attempt) == (NOW + 60 * S, 1)


async def test_a_failed_run_can_queue_its_next_attempt_due_later(store: Store) -> None:
    await store.insert_job(record("a", NOW, misfire_grace_time=5))
    first = (await store.claim_due(NOW, 10, "n", every_minute)).started[0].run
    failed = FinishedRun(
        first.id, RunStatus.FAILED, NOW, NOW + S, 503, "HTTP 503", retry_due_us=NOW + 30 * S
    )
    early = await store.claim_due(NOW + 2 * S, 10, "n", every_minute, finished=[failed])
    assert early.started == []
    assert early.next_due_us == NOW + 30 * S
    [queued] = await store.list_runs(
        job_id="a", status=RunStatus.SCHEDULED, before_id=None, limit=9
    )
    assert (queued.attempt, queued.scheduled_for_us, queued.due_us) == (2, NOW, NOW + 30 * S)
    # Due at its own time: its fire's grace counts from then, not from the fire.
    due = await store.claim_due(NOW + 31 * S, 10, "n", every_minute)
    assert [(s.run.attempt, s.run.scheduled_for_us) for s in due.started] == [(2, NOW)]


async def test_a_retry_is_queued_only_by_the_node_still_holding_the_run(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    run = (await store.claim_due(NOW, 10, "n1", every_minute)).started[0].run
    await store.interrupt_running("n1", retries=0, policy=every_minute)
    late = FinishedRun(run.id, RunStatus.FAILED, NOW, NOW + S, retry_due_us=NOW + 2 * S)
    await store.finish_runs("n1", [late])
    assert (
        await store.list_runs(job_id="a", status=RunStatus.SCHEDULED, before_id=None, limit=9) == []
    )


def failing(limit: int | None = 2, **verdict: Any) -> Verdict:
    values: dict[str, Any] = {
        "failed": True,
        "limit": limit,
        "probe": False,
        "decided_us": NOW,
        "next_probe_us": None,
        "resume": (None, None),
        "pause_reason": "paused by the circuit breaker after 2 failed fires in a row",
    }
    return Verdict(**(values | verdict))


async def fire_and_finish(store: Store, now_us: int, verdict: Verdict) -> int:
    """Claim the due fire of job "a" and finish it with ``verdict``; return its run id."""
    run = (await store.claim_due(now_us, 10, "n", every_minute)).started[0].run
    status = RunStatus.FAILED if verdict.failed else RunStatus.SUCCEEDED
    await store.finish_runs("n", [FinishedRun(run.id, status, now_us, now_us, verdict=verdict)])
    return run.id


async def test_the_breaker_counts_failures_in_a_row_and_pauses_at_its_limit(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    await fire_and_finish(store, NOW, failing())
    assert (await store.get_job("a")).failures == 1
    await fire_and_finish(store, NOW + 60 * S, failing(failed=False))  # a success resets
    assert (await store.get_job("a")).failures == 0
    await fire_and_finish(store, NOW + 120 * S, failing())
    tripped = "paused by the circuit breaker after 2 failed fires in a row; the last: run 9"
    await fire_and_finish(store, NOW + 180 * S, failing(pause_reason=tripped))
    job = await store.get_job("a")
    assert job.spec.paused is True
    assert (job.failures, job.next_run_us) == (2, None)
    assert job.pause_reason == tripped
    assert (await store.claim_due(NOW + 999 * S, 10, "n", every_minute)).started == []


@pytest.mark.parametrize("auto_resume_after", [30.0, None])
async def test_a_probe_cut_short_for_good_sets_the_next_probe(
    store: Store, auto_resume_after: float | None
) -> None:
    await store.insert_job(record("a", NOW, auto_resume_after=auto_resume_after))
    await fire_and_finish(store, NOW, failing(limit=1, next_probe_us=NOW + 30 * S))
    probe = await store.claim_due(NOW + 30 * S, 10, "n", Planner())
    assert len(probe.started) == 1
    assert (await store.get_job("a")).next_run_us is None  # while its probe runs
    before_us = time.time_ns() // 1000
    assert await store.interrupt_running("n", retries=0, policy=every_minute) == 1
    job = await store.get_job("a")
    assert job.spec.paused is True
    assert job.pause_reason is not None
    if auto_resume_after is None:
        assert job.next_run_us is None  # no probes for this job: it waits to be resumed
    else:
        # Probed again a breaker's pause later, by the database's clock.
        assert job.next_run_us is not None
        assert job.next_run_us >= before_us + 30 * S - 5 * S


async def test_a_tripped_breaker_probes_then_resumes_on_success(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    await fire_and_finish(store, NOW, failing(limit=1, next_probe_us=NOW + 30 * S))
    paused = await store.get_job("a")
    assert (paused.spec.paused, paused.next_run_us) == (True, NOW + 30 * S)
    failed_probe = "the circuit breaker's probe failed: run 2 (timed out)"
    probe = failing(probe=True, next_probe_us=NOW + 90 * S, pause_reason=failed_probe)
    await fire_and_finish(store, NOW + 30 * S, probe)  # the probe fails: paused, probe again
    again = await store.get_job("a")
    assert (again.spec.paused, again.next_run_us) == (True, NOW + 90 * S)
    assert again.pause_reason == failed_probe
    success = failing(failed=False, probe=True, resume=(NOW + 120 * S, NOW + 121 * S))
    await fire_and_finish(store, NOW + 90 * S, success)
    resumed = await store.get_job("a")
    assert resumed.spec.paused is False
    assert (resumed.failures, resumed.pause_reason) == (0, None)
    assert (resumed.next_fire_us, resumed.next_run_us) == (NOW + 120 * S, NOW + 121 * S)
    audited = [(r.actor, r.action, r.target) for r in reversed(await store.list_audit())]
    assert audited == [
        ("circuit-breaker", "job.pause", "a"),
        ("circuit-breaker", "job.resume", "a"),
    ]
    pause = (await store.list_audit(limit=2))[1]
    assert pause.detail is not None
    assert "failed fires in a row" in pause.detail


async def test_a_verdict_from_a_node_that_lost_its_run_is_ignored(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    run = (await store.claim_due(NOW, 10, "n1", every_minute)).started[0].run
    await store.interrupt_running("n1", retries=0, policy=every_minute)
    late = FinishedRun(run.id, RunStatus.FAILED, NOW, NOW + S, verdict=failing(limit=1))
    await store.finish_runs("n1", [late])
    assert (await store.get_job("a")).failures == 0


async def finished_runs(store: Store, job_id: str, count: int) -> list[int]:
    """``count`` finished manual runs of the job, finished at NOW + i seconds; their ids."""
    ids = []
    for i in range(count):
        run = await store.add_manual_run(job_id, NOW + i)
        await store.claim_due(NOW + i, 10, "n", every_minute)
        finished = FinishedRun(run.id, RunStatus.SUCCEEDED, NOW + i * S, NOW + i * S)
        await store.finish_runs("n", [finished])
        ids.append(run.id)
    return ids


async def history(store: Store, job_id: str) -> list[int]:
    runs = await store.list_runs(job_id=job_id, status=None, before_id=None, limit=1000)
    return sorted(run.id for run in runs)


async def test_purge_keeps_a_jobs_newest_finished_runs_and_drops_the_old(store: Store) -> None:
    await store.insert_job(record("a", None, paused=True))
    await store.insert_job(record("b", None, paused=True))
    a = await finished_runs(store, "a", 5)
    b = await finished_runs(store, "b", 3)
    queued = await store.add_manual_run("a", NOW + 100)
    # The newest 3 runs of "a" are kept, the queued one among them (it is never purged).
    assert await store.purge_runs([("a", 3, None), ("b", 10, NOW + 1 * S + 1)]) == 3 + 2
    assert await history(store, "a") == [*a[3:], queued.id]
    assert await history(store, "b") == b[2:]  # by age: finished before NOW + 1 s + 1 us
    assert await store.purge_runs([("a", 0, None)]) == 2
    assert await history(store, "a") == [queued.id]


async def test_expired_runs_go_in_bounded_batches_sparing_jobs_with_their_own_age(
    store: Store,
) -> None:
    spec = SPEC.model_copy(update={"history": HistoryPolicy(max_age=3600)})
    await store.insert_job(record("a", None, paused=True))
    await store.insert_job(JobRecord("own", spec, None, None, NOW, NOW))
    a = await finished_runs(store, "a", 4)
    kept = await finished_runs(store, "own", 1)
    queued = await store.add_manual_run("a", NOW + 100)
    assert await store.purge_expired_runs(NOW + 10 * S, 0) == 0
    # A store may go through its runs in parts: a call that deletes less than its limit may
    # leave expired runs for later calls, but a few calls reach them all.
    batches = [await store.purge_expired_runs(NOW + 3 * S, 1) for _ in range(4)]
    assert all(deleted <= 1 for deleted in batches)
    assert sum(batches) == 3  # a[0] to a[2]; a[3] finished at NOW + 3 s, not before
    assert await history(store, "a") == [a[3], queued.id]
    assert await history(store, "own") == kept


async def test_deleting_a_job_can_purge_its_history(store: Store) -> None:
    await store.insert_job(record("a", None, paused=True))
    await finished_runs(store, "a", 2)
    await store.delete_job("a", purge_runs=True)
    assert await history(store, "a") == []


async def test_deleting_a_job_skips_its_pending_runs_and_keeps_history(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    ran = (await store.claim_due(NOW, 1, "n", every_minute)).started[0].run
    pending = await store.add_manual_run("a", NOW + 1)
    await store.delete_job("a")
    assert (await store.get_run(pending.id)).status is RunStatus.SKIPPED
    assert (await store.get_run(ran.id)).status is RunStatus.RUNNING
    assert (await store.claim_due(NOW + S, 10, "n", every_minute)).started == []


async def test_interrupt_running_marks_only_unfinished_runs_and_retries(store: Store) -> None:
    for job_id in ("a", "b"):
        await store.insert_job(record(job_id, NOW))
    started = (await store.claim_due(NOW, 10, "n", every_minute)).started
    await store.finish_runs(
        "n", [FinishedRun(started[0].run.id, RunStatus.SUCCEEDED, NOW, NOW + 1)]
    )
    assert await store.interrupt_running("other-node", retries=1, policy=every_minute) == 0
    assert await store.interrupt_running(None, retries=1, policy=every_minute) == 1
    runs = await store.list_runs(job_id=None, status=None, before_id=None, limit=10)
    by_attempt = {(r.job_id, r.attempt): r for r in runs}
    assert by_attempt[("a", 1)].status is RunStatus.SUCCEEDED
    assert by_attempt[("b", 1)].status is RunStatus.INTERRUPTED
    retry = by_attempt[("b", 2)]
    assert (retry.status, retry.scheduled_for_us) == (RunStatus.SCHEDULED, NOW)
    assert len(runs) == 3
    # The retry starts on the next claim; interrupted again, it has no attempt left.
    claim = await store.claim_due(NOW + 1, 10, "n", every_minute)
    assert [(s.run.job_id, s.run.attempt) for s in claim.started] == [("b", 2)]
    assert await store.interrupt_running("n", retries=1, policy=every_minute) == 1
    assert len(await store.list_runs(job_id="b", status=None, before_id=None, limit=10)) == 2


async def test_a_finish_from_a_node_that_lost_its_run_is_ignored(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    run = (await store.claim_due(NOW, 1, "n1", every_minute)).started[0].run
    await store.interrupt_running("n1", retries=0, policy=every_minute)
    await store.finish_runs("n1", [FinishedRun(run.id, RunStatus.SUCCEEDED, NOW, NOW + 9)])
    assert (await store.get_run(run.id)).status is RunStatus.INTERRUPTED


async def test_nodes_beat_and_dead_ones_are_taken_over_once(store: Store) -> None:
    await store.heartbeat("alive", "host-a")
    await store.heartbeat("doomed", "host-b")
    await store.insert_job(record("a", NOW))
    run = (await store.claim_due(NOW, 1, "doomed", every_minute)).started[0].run
    nodes = {n.id: n for n in await store.list_nodes()}
    assert set(nodes) == {"alive", "doomed"}
    assert nodes["doomed"].running == 1
    assert nodes["alive"].running == 0
    assert 0 <= nodes["alive"].heartbeat_age_us < 60 * S
    assert await store.take_over(lease_us=60 * S, retries=1, policy=every_minute) == []
    await asyncio.sleep(0.01)  # both heartbeats are now older than a 1 ms lease
    taken = await asyncio.gather(
        *(store.take_over(lease_us=1000, retries=1, policy=every_minute) for _ in range(3))
    )
    assert sorted(node for batch in taken for node in batch) == ["alive", "doomed"]
    assert (await store.get_run(run.id)).status is RunStatus.INTERRUPTED
    retried = await store.list_runs(job_id="a", status=RunStatus.SCHEDULED, before_id=None, limit=5)
    assert [(r.attempt, r.scheduled_for_us) for r in retried] == [(2, NOW)]
    assert await store.list_nodes() == []
    await store.heartbeat("alive", "host-a")  # a node thought dead comes back
    assert [n.id for n in await store.list_nodes()] == ["alive"]


def plan_wait_for_slot(job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
    """A plan that starts the due fire once the job has room, and till then leaves it due,
    recording nothing."""
    assert job.next_fire_us is not None
    if slots.budget <= 0 or slots.running >= job.spec.max_instances:
        return FirePlan([], job.next_fire_us, job.next_run_us)
    return plan_every_minute(job, now_us, slots)


wait_for_slot = PlanPolicy(plan_wait_for_slot)


async def test_runs_of_a_crashed_process_stop_counting_toward_max_instances_at_once(
    store: Store, store_url: str
) -> None:
    if store.single_process:
        pytest.skip("a single-process store has no other process to crash")
    victim = store_for_url(store_url)
    await victim.open()
    try:
        await store.heartbeat("survivor", "host-a")
        await victim.heartbeat("victim", "host-b")
        await store.insert_job(record("a", NOW))
        held = (await victim.claim_due(NOW, 1, "victim", every_minute)).started[0].run
        # Alive, the victim's run holds the job's only slot.
        assert (await store.claim_due(NOW + 60 * S, 1, "survivor", wait_for_slot)).started == []
    finally:
        await victim.close()  # gone without a word, as a killed process is; lease not run out

    async def next_fire_started() -> list[int]:
        while True:
            claim = await store.claim_due(NOW + 60 * S, 1, "survivor", wait_for_slot)
            if claim.started:
                return [started.run.scheduled_for_us for started in claim.started]
            await asyncio.sleep(0.01)

    async with asyncio.timeout(5):
        assert await next_fire_started() == [NOW + 60 * S]
    # The run itself is left to the takeover, when the lease has run out.
    assert (await store.get_run(held.id)).status is RunStatus.RUNNING


async def test_list_runs_newest_first_with_filters_and_cursor(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    await store.insert_job(record("b", NOW))
    ids = [(await store.add_manual_run(j, NOW + i)).id for i, j in enumerate("abab")]
    page = await store.list_runs(job_id=None, status=None, before_id=None, limit=3)
    assert [r.id for r in page] == ids[::-1][:3]
    older = await store.list_runs(job_id=None, status=None, before_id=page[-1].id, limit=3)
    assert [r.id for r in older] == [ids[0]]
    only_b = await store.list_runs(job_id="b", status=None, before_id=None, limit=10)
    assert [r.id for r in only_b] == [ids[3], ids[1]]
    none_running = await store.list_runs(
        job_id=None, status=RunStatus.RUNNING, before_id=None, limit=10
    )
    assert none_running == []


async def test_meta_keeps_the_first_value(store: Store) -> None:
    assert await store.get_meta("k") is None
    assert await store.set_meta_if_absent("k", "one") == "one"
    assert await store.set_meta_if_absent("k", "two") == "one"
    assert await store.get_meta("k") == "one"


async def test_a_store_that_can_be_written_says_so_and_keeps_nothing_of_the_probe(
    store: Store,
) -> None:
    await store.check_writable()
    await store.check_writable()  # within the second: the same answer, no second probe
    assert await store.get_meta("readiness_probe_room") is None


async def test_a_change_made_by_one_process_reaches_the_others(
    store: Store, store_url: str
) -> None:
    if store.single_process or not store.announces_changes:
        pytest.skip("no other process hears of this store's changes")
    other = store_for_url(store_url)
    await other.open()
    expected: list[tuple[int | None, str | None]] = [
        (NOW + 5 * S, "a"),  # created: due then
        (None, None),  # a manual run: look now
        (NOW + 7 * S, "b"),  # created in a batch
        (None, "a"),  # deleted: forget its fires claimed ahead
    ]
    heard = {notice: asyncio.Event() for notice in expected}
    try:
        await other.watch(lambda *notice: heard[notice].set() if notice in heard else None)
        heard[None, None].clear()  # the listener's own "look now" when it connects
        await store.insert_job(record("a", NOW + 5 * S))
        await store.add_manual_run("a", NOW)
        await store.upsert_jobs([record("b", NOW + 7 * S)])
        await store.delete_job("a")
        async with asyncio.timeout(5):
            for notice in expected:
                await heard[notice].wait()
    finally:
        await other.close()


async def test_nodes_with_skewed_clocks_never_duplicate_a_fire(store: Store) -> None:
    await store.insert_job(record("a", NOW))
    ahead = await store.claim_due(NOW + 5 * S, 10, "fast-clock", every_minute)
    behind = await store.claim_due(NOW - 5 * S, 10, "slow-clock", every_minute)
    on_time = await store.claim_due(NOW, 10, "true-clock", every_minute)
    started = [s.run.scheduled_for_us for c in (ahead, behind, on_time) for s in c.started]
    assert started == [NOW]


async def test_apply_writes_upserts_and_deletes_together_with_one_audit_record(
    store: Store,
) -> None:
    await store.insert_job(record("old"))
    await store.insert_job(record("kept"))
    by = Actor("ops", NOW)
    summary: dict[str, object] = {"created": ["new"], "deleted": ["old", "gone"]}
    await store.apply_jobs([record("new")], ["old", "gone"], by=by, summary=summary)
    assert {job.id for job in await store.list_jobs(JobQuery(), 10)} == {"kept", "new"}
    [entry] = await store.list_audit()
    assert (entry.action, entry.actor, entry.target) == ("jobs.apply", "ops", "jobs")
    assert json.loads(entry.detail or "null") == summary


async def test_newest_runs_lists_each_jobs_newest_runs_newest_first(store: Store) -> None:
    for job_id in ("a", "b", "quiet"):
        await store.insert_job(record(job_id, None, paused=True))
    made: dict[str, list[int]] = {"a": [], "b": []}
    for step in range(7):
        job_id = "a" if step % 3 else "b"
        made[job_id].append((await store.add_manual_run(job_id, NOW + step)).id)
    newest = await store.newest_runs(["a", "b", "quiet", "unknown"], 3)
    assert {job_id: [run.id for run in runs] for job_id, runs in newest.items()} == {
        "a": made["a"][::-1][:3],
        "b": made["b"][::-1],
        "quiet": [],
        "unknown": [],
    }
    assert all(run.job_id == "a" for run in newest["a"])
    assert await store.newest_runs([], 3) == {}
