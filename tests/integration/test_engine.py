"""The engine end to end in one process: SQLite file, real HTTP calls, real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kairos.engine import Scheduler
from kairos.models import JobRecord, JobSpec, RunRecord, RunStatus
from kairos.settings import Settings
from kairos.store import Store, store_for_url
from tests.support.target import Delivery, RecordingTarget


@pytest.fixture
async def target() -> AsyncIterator[RecordingTarget]:
    async with RecordingTarget() as server:
        yield server


def make_store(tmp_path: Path) -> Store:
    """The store of ``make_scheduler(tmp_path)``, for a test that reads or writes behind the
    facade's back: pass it to ``make_scheduler``, which opens and closes it."""
    return store_for_url(f"sqlite:///{tmp_path}/k.db")


def make_scheduler(tmp_path: Path, store: Store | None = None, **settings: Any) -> Scheduler:
    config = Settings(database_url=f"sqlite:///{tmp_path}/k.db", shutdown_grace=0.5, **settings)
    return Scheduler.from_settings(config, store=store)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_store(tmp_path)


@pytest.fixture
async def scheduler(tmp_path: Path, store: Store) -> AsyncIterator[Scheduler]:
    engine = make_scheduler(tmp_path, store)
    await engine.start()
    yield engine
    await engine.stop()


def spec(url: str, trigger: dict[str, Any], **extra: Any) -> JobSpec:
    return JobSpec.model_validate({"trigger": trigger, "target": {"url": url}, **extra})


def soon(seconds: float = 0.3) -> dict[str, Any]:
    run_date = datetime.now(UTC) + timedelta(seconds=seconds)
    return {"type": "date", "run_date": run_date.isoformat()}


async def wait_runs(
    scheduler: Scheduler,
    job_id: str,
    condition: Callable[[list[RunRecord]], bool],
    deadline_s: float = 10,
) -> list[RunRecord]:
    """Poll the run history until ``condition`` holds; fail after the deadline."""
    async with asyncio.timeout(deadline_s):
        while True:
            runs = await scheduler.list_runs(job_id=job_id, limit=1000)
            if condition(runs):
                return runs
            await asyncio.sleep(0.02)


async def wait_job(
    scheduler: Scheduler, job_id: str, condition: Callable[[JobRecord], bool]
) -> JobRecord:
    """Poll the job until ``condition`` holds; fail after 10 s."""
    async with asyncio.timeout(10):
        while True:
            job = await scheduler.get_job(job_id)
            if condition(job):
                return job
            await asyncio.sleep(0.02)


def at(target: RecordingTarget, path: str) -> list[Delivery]:
    return [d for d in target.deliveries if d.path == path]


async def test_a_date_job_fires_once_and_its_run_is_recorded(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    job = await scheduler.create_job("once", spec(target.url("/once"), soon()))
    runs = await wait_runs(scheduler, "once", lambda r: r and r[0].status is RunStatus.SUCCEEDED)
    assert len(runs) == 1
    assert runs[0].scheduled_for_us == job.next_fire_us
    assert (runs[0].http_status, runs[0].response_excerpt) == (200, "ok")
    assert len(target.deliveries) == 1
    assert (await scheduler.get_job("once")).next_run_us is None


async def test_a_fault_while_claiming_is_logged_and_the_schedule_goes_on(
    scheduler: Scheduler, store: Store, target: RecordingTarget, caplog: pytest.LogCaptureFixture
) -> None:
    claim_due = store.claim_due
    faults = [RuntimeError("a fault in planning")]

    async def faulty(*args: Any, **kwargs: Any) -> Any:
        if faults:
            raise faults.pop()
        return await claim_due(*args, **kwargs)

    store.claim_due = faulty  # type: ignore[method-assign]
    scheduler._dispatcher.wake()
    await scheduler.put_job("after", spec(target.url("/after"), soon(0.1)))
    await wait_runs(scheduler, "after", lambda runs: [r.status for r in runs] == ["succeeded"])
    assert not faults
    assert "dispatch failed, retrying" in caplog.text


async def test_a_job_whose_next_fire_cannot_be_computed_is_paused_saying_why(
    scheduler: Scheduler, store: Store, target: RecordingTarget
) -> None:
    """Only possible for a job stored before trigger dates were range checked."""
    from sqlalchemy import update

    from kairos.clock import to_us
    from kairos.store.schema import jobs

    every_minute = {"type": "cron", "expression": "* * * * *"}
    await scheduler.put_job("edge", spec(target.url("/edge"), every_minute))
    # Due now, its fire in the calendar's last minute: the one after it is past the calendar.
    last_minute = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    change = (
        update(jobs)
        .where(jobs.c.id == "edge")
        .values(next_fire_us=to_us(last_minute), next_run_us=to_us(datetime.now(UTC)))
    )
    await store._write(lambda conn: conn.execute(change))  # type: ignore[attr-defined]
    await scheduler.put_job("fine", spec(target.url("/fine"), soon(0.1)))
    await wait_runs(scheduler, "fine", lambda runs: [r.status for r in runs] == ["succeeded"])
    edge = await wait_job(scheduler, "edge", lambda job: job.pause_reason is not None)
    assert edge.pause_reason is not None
    assert "cannot be computed" in edge.pause_reason
    assert (edge.spec.paused, edge.next_run_us) == (True, None)


async def test_a_failing_target_gives_a_failed_run_that_says_why(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    await scheduler.create_job("bad", spec(target.url("/x?status=500"), soon()))
    runs = await wait_runs(scheduler, "bad", lambda r: r and r[0].status is RunStatus.FAILED)
    assert runs[0].http_status == 500
    assert runs[0].error == "HTTP 500 Internal Server Error"


async def test_max_instances_records_skipped_fires(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    trigger = {"type": "interval", "seconds": 0.1}
    await scheduler.create_job("busy", spec(target.url("/busy?delay=2"), trigger))
    runs = await wait_runs(
        scheduler, "busy", lambda r: sum(x.status is RunStatus.SKIPPED for x in r) >= 3
    )
    assert sum(r.status is RunStatus.RUNNING for r in runs) == 1
    assert len(at(target, "/busy")) == 1
    skipped = next(r for r in runs if r.status is RunStatus.SKIPPED)
    assert "max_instances (1)" in (skipped.error or "")


async def test_global_cap_limits_calls_in_flight(tmp_path: Path, target: RecordingTarget) -> None:
    engine = make_scheduler(tmp_path, max_concurrent_runs=2)
    await engine.start()
    try:
        trigger = soon(0.2)
        for i in range(5):
            await engine.create_job(f"j{i}", spec(target.url("/slow?delay=1"), trigger))
        await target.wait_for(2)
        peak = engine.runs_in_flight
        await target.wait_for(5, deadline_s=10)
        deliveries = sorted(d.received_us for d in target.deliveries)
    finally:
        await engine.stop()
    assert peak == 2
    # The third call could only start after one of the first two had finished.
    assert deliveries[2] - deliveries[0] >= 1_000_000


async def test_replace_applies_to_every_fire_not_yet_started(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    trigger = {"type": "interval", "seconds": 0.1}
    await scheduler.put_job("j", spec(target.url("/old"), trigger))
    await target.wait_for(lambda d: len(at(target, "/old")) >= 2)
    await scheduler.put_job("j", spec(target.url("/new"), trigger))
    replaced_us = time.time_ns() // 1000
    await target.wait_for(lambda d: len(at(target, "/new")) >= 3)
    assert [d for d in at(target, "/old") if d.received_us > replaced_us + 50_000] == []


async def test_pause_stops_fires_and_resume_restarts_them(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    trigger = {"type": "interval", "seconds": 0.1}
    await scheduler.create_job("p", spec(target.url("/p"), trigger))
    await target.wait_for(2)
    paused = await scheduler.pause_job("p")
    assert paused.next_run_us is None
    count = len(target.deliveries)
    await scheduler.run_now("p")  # run now still works while paused
    await target.wait_for(count + 1)
    await asyncio.sleep(0.5)  # a window in which a paused job must stay silent
    assert len(target.deliveries) == count + 1
    await scheduler.resume_job("p")
    await target.wait_for(count + 3)


async def test_delete_stops_fires_and_keeps_history(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    await scheduler.create_job("d", spec(target.url("/d"), {"type": "interval", "seconds": 0.1}))
    await target.wait_for(2)
    await scheduler.delete_job("d")
    count = len(target.deliveries)
    await asyncio.sleep(0.5)  # a window in which a deleted job must stay silent
    assert len(target.deliveries) <= count + 1  # at most the call already under way
    history = await scheduler.list_runs(limit=100)
    assert {r.job_id for r in history} == {"d"}


async def test_fires_claimed_ahead_are_called_at_their_due_time_not_before(
    tmp_path: Path, target: RecordingTarget
) -> None:
    engine = make_scheduler(tmp_path, claim_ahead=1.0)  # the widest window: claimed at once
    await engine.start()
    try:
        jobs = [
            await engine.create_job(f"due-{i}", spec(target.url("/due"), soon(0.2 + i * 0.15)))
            for i in range(3)
        ]
        await target.wait_for(lambda d: len(at(target, "/due")) == 3)
    finally:
        await engine.stop()
    received = sorted(d.received_us for d in at(target, "/due"))
    for job, received_us in zip(jobs, received, strict=True):
        assert job.next_fire_us is not None
        assert received_us >= job.next_fire_us, "called before its due time"


@pytest.mark.parametrize("change", ["pause", "delete", "replace"])
async def test_a_change_revokes_a_fire_claimed_ahead_before_it_is_called(
    tmp_path: Path, target: RecordingTarget, change: str
) -> None:
    store = make_store(tmp_path)
    engine = make_scheduler(tmp_path, store, claim_ahead=1.0)
    await engine.start()
    try:
        job = await engine.create_job("j", spec(target.url("/old"), soon(0.8)))
        await wait_runs(engine, "j", lambda r: bool(r))  # claimed: waiting for its due time
        if change == "pause":
            await engine.pause_job("j")
        elif change == "delete":
            await engine.delete_job("j")
        else:
            await engine.put_job("j", spec(target.url("/new"), {"type": "interval", "hours": 1}))
        run = await settled_run(store)
    finally:
        await engine.stop()
    assert (run.status, run.error) == (
        RunStatus.SKIPPED,
        "the job was changed before this run started",
    )
    assert run.started_us is None
    assert job.next_fire_us is not None
    assert run.finished_us is not None
    assert run.finished_us < job.next_fire_us  # revoked at once, not at its due time
    assert at(target, "/old") == []


async def settled_run(store: Store) -> RunRecord:
    """Job j's one run once it is no longer running, read from the store (the API answers 404
    for a deleted job)."""
    async with asyncio.timeout(10):
        while True:
            [run] = await store.list_runs(job_id="j", status=None, before_id=None, limit=9)
            if run.status is not RunStatus.RUNNING:
                return run
            await asyncio.sleep(0.02)


async def test_run_now_waits_for_a_running_run_of_its_job_then_starts(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    await scheduler.create_job("busy", spec(target.url("/slow?delay=0.5"), soon(0.1)))
    await target.wait_for(1)  # the scheduled run is in its call
    queued = await scheduler.run_now("busy")  # max_instances 1: it has to wait
    runs = await wait_runs(
        scheduler, "busy", lambda r: [x.status for x in r] == [RunStatus.SUCCEEDED] * 2
    )
    first, manual = sorted(runs, key=lambda r: r.id)
    assert manual.id == queued.id
    assert manual.started_us is not None
    assert first.finished_us is not None
    assert manual.started_us >= first.finished_us


def done(runs: list[RunRecord]) -> bool:
    return bool(runs) and all(r.finished_us is not None for r in runs)


async def test_a_failed_fire_is_retried_with_backoff_until_it_succeeds(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    retry = {"max_attempts": 5, "initial_delay": 0.1, "jitter": 0}
    await scheduler.create_job(
        "flaky", spec(target.url("/flaky?fail_first=2"), soon(), retry=retry)
    )
    runs = await wait_runs(
        scheduler, "flaky", lambda r: any(x.status is RunStatus.SUCCEEDED for x in r)
    )
    runs.sort(key=lambda r: r.attempt)
    statuses = [(r.attempt, r.status) for r in runs]
    assert statuses == [(1, RunStatus.FAILED), (2, RunStatus.FAILED), (3, RunStatus.SUCCEEDED)]
    assert len({r.scheduled_for_us for r in runs}) == 1  # attempts of one fire
    assert [d.headers["X-Kairos-Attempt"] for d in at(target, "/flaky")] == ["1", "2", "3"]
    # Never before its backoff: 0.1 s, then 0.2 s.
    for before, after, wait_us in ((runs[0], runs[1], 100_000), (runs[1], runs[2], 200_000)):
        assert before.finished_us is not None
        assert after.started_us is not None
        assert after.started_us - before.finished_us >= wait_us


async def test_only_failures_worth_another_try_are_retried_and_only_so_often(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    retry = {"max_attempts": 2, "initial_delay": 0, "jitter": 0}
    await scheduler.create_job("gone", spec(target.url("/gone?status=404"), soon(), retry=retry))
    await scheduler.create_job("down", spec(target.url("/down?status=503"), soon(), retry=retry))
    down = await wait_runs(scheduler, "down", lambda r: len(r) == 2 and done(r))
    gone = await wait_runs(scheduler, "gone", done)
    assert sorted(r.attempt for r in down) == [1, 2]
    assert [r.attempt for r in gone] == [1]
    # Given time for a third attempt or a second 404 call, neither comes.
    await scheduler.create_job("marker", spec(target.url("/marker"), soon(0.2)))
    await wait_runs(scheduler, "marker", done)
    assert len(at(target, "/down")) == 2
    assert len(at(target, "/gone")) == 1


async def test_the_fires_deadline_cuts_an_attempt_short_and_stops_retries(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    body = spec(
        target.url("/slow?delay=30"),
        soon(),
        deadline=0.5,
        retry={"initial_delay": 0.01},
    )
    body = body.model_copy(update={"target": body.target.model_copy(update={"timeout": 20})})
    await scheduler.create_job("late", body)
    runs = await wait_runs(scheduler, "late", done)
    assert [r.attempt for r in runs] == [1]
    assert (runs[0].error or "").startswith("timed out after 0.")


async def test_the_breaker_pauses_a_failing_job_and_its_probe_resumes_it(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    every = {"type": "interval", "seconds": 0.2}
    flaky = spec(
        target.url("/flaky?fail_first=2"),
        every,
        max_consecutive_failures=2,
        auto_resume_after=0.3,
    )
    await scheduler.create_job("flaky", flaky)

    tripped = await wait_job(scheduler, "flaky", lambda job: job.pause_reason is not None)
    assert tripped.spec.paused
    assert "after 2 failed fires in a row" in tripped.pause_reason
    # The probe, 0.3 s later, reaches a target that has recovered: the job runs again.
    resumed = await wait_job(scheduler, "flaky", lambda job: not job.spec.paused)
    assert (resumed.pause_reason, resumed.failures) == (None, 0)
    await wait_runs(
        scheduler, "flaky", lambda r: sum(x.status is RunStatus.SUCCEEDED for x in r) >= 3
    )


async def test_manual_runs_do_not_count_and_resume_resets_the_breaker(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    never = {"type": "cron", "expression": "0 0 1 1 *"}
    await scheduler.create_job(
        "m", spec(target.url("/m?status=503"), never, max_consecutive_failures=1)
    )
    await scheduler.run_now("m")
    await wait_runs(scheduler, "m", done)
    assert (await scheduler.get_job("m")).spec.paused is False  # a manual run: not counted
    await scheduler.create_job(
        "t", spec(target.url("/t?status=503"), soon(), max_consecutive_failures=1)
    )
    await wait_job(scheduler, "t", lambda job: job.pause_reason is not None)
    resumed = await scheduler.resume_job("t")
    assert (resumed.spec.paused, resumed.pause_reason, resumed.failures) == (False, None, 0)
    probing = spec(target.url("/u?status=503"), soon(), max_consecutive_failures=1)
    await scheduler.create_job("u", probing.model_copy(update={"auto_resume_after": 60}))
    tripped = await wait_job(scheduler, "u", lambda job: job.pause_reason is not None)
    assert tripped.next_run_us is not None  # the probe, a minute on
    paused = await scheduler.pause_job("u")
    assert (paused.spec.paused, paused.pause_reason, paused.next_run_us) == (True, None, None)


async def test_a_replacement_that_sends_the_mask_keeps_calling_with_the_secret(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    never = {"type": "cron", "expression": "0 0 1 1 *"}
    body = spec(target.url("/s"), never)
    secret = body.target.model_copy(update={"headers": {"Authorization": "Bearer s3cret"}})
    await scheduler.create_job("s", body.model_copy(update={"target": secret}))
    masked = secret.model_copy(update={"headers": {"Authorization": "***"}})
    await scheduler.put_job("s", body.model_copy(update={"target": masked}))
    await scheduler.run_now("s")
    await wait_runs(scheduler, "s", done)
    assert [d.headers["Authorization"] for d in at(target, "/s")] == ["Bearer s3cret"]


async def test_a_webhook_secret_sent_back_as_the_mask_is_kept(
    scheduler: Scheduler, target: RecordingTarget
) -> None:
    never = {"type": "cron", "expression": "0 0 1 1 *"}
    hook = {"url": target.url("/hook"), "secret": "w3bh00k"}
    await scheduler.create_job("w", spec(target.url("/w"), never, on_failure=hook))
    await scheduler.put_job("w", spec(target.url("/w"), never, on_failure=hook | {"secret": "***"}))
    stored = (await scheduler.get_job("w")).spec.on_failure
    assert stored is not None
    assert stored.secret == "w3bh00k"
    await scheduler.patch_job("w", {"on_failure": hook | {"secret": "changed"}})
    changed = (await scheduler.get_job("w")).spec.on_failure
    assert changed is not None
    assert changed.secret == "changed"
