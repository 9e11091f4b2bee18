"""Run retention over a real store: trimming by count, sweeping by age, bounded per tick."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kairos.engine.retention import Retention
from kairos.models import HistoryPolicy, JobRecord, JobSpec, RunStatus
from kairos.store import FinishedRun, FirePlan, Slots, Store, store_for_url
from kairos.store.memory import MemoryStore
from kairos.store.sql import SqlStore
from tests.support.policies import PlanPolicy

NOW = 1_800_000_000_000_000
S = 1_000_000
DAY = 86_400 * S
SPEC = JobSpec.model_validate(
    {"trigger": {"type": "interval", "seconds": 60}, "target": {"url": "http://127.0.0.1:9/"}}
)


class FixedClock:
    def __init__(self, now_us: int) -> None:
        self.now = now_us

    def now_us(self) -> int:
        return self.now


def plan_nothing(job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
    return FirePlan([], job.next_fire_us, job.next_run_us)


start_all = PlanPolicy(plan_nothing)


async def opened(url: str) -> AsyncIterator[Store]:
    store = store_for_url(url)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    async for one in opened("memory://"):
        yield one


@pytest.fixture
async def sqlite_store() -> AsyncIterator[Store]:
    async for one in opened("sqlite://"):
        yield one


async def add_history(store: Store, job_id: str, count: int, spec: JobSpec = SPEC) -> None:
    await store.insert_job(
        JobRecord(job_id, spec.model_copy(update={"paused": True}), None, None, NOW, NOW)
    )
    for i in range(count):
        run = await store.add_manual_run(job_id, NOW + i)
        await store.claim_due(NOW + i, 10, "n", start_all)
        done = FinishedRun(run.id, RunStatus.SUCCEEDED, NOW + i * S, NOW + i * S)
        await store.finish_runs("n", [done])


async def kept(store: Store, job_id: str) -> int:
    return len(await store.list_runs(job_id=job_id, status=None, before_id=None, limit=10_000))


async def test_a_job_is_trimmed_to_its_limit_when_its_fire_draws_it(store: Store) -> None:
    await add_history(store, "a", 30)
    own = SPEC.model_copy(update={"history": HistoryPolicy(max_runs=5)})
    await add_history(store, "b", 30, own)
    lucky = Retention(
        store, FixedClock(NOW), keep_per_job=10, max_age_s=86_400, random_fn=lambda: 0.0
    )
    lucky.finished("a", SPEC)
    lucky.finished("a", SPEC)  # already on the list: once is enough
    lucky.finished("b", own)
    assert await lucky.sweep() == (20 + 25, False)
    assert (await kept(store, "a"), await kept(store, "b")) == (10, 5)


async def test_a_fire_draws_its_job_with_probability_ten_over_its_limit(store: Store) -> None:
    await add_history(store, "a", 105)
    draws = iter([0.11, 0.09])  # a limit of 100: drawn below 1 / 10
    retention = Retention(
        store, FixedClock(NOW), keep_per_job=100, max_age_s=86_400, random_fn=lambda: next(draws)
    )
    retention.finished("a", SPEC)
    assert await retention.sweep() == (0, False)
    retention.finished("a", SPEC)
    assert await retention.sweep() == (5, False)


async def test_the_age_sweep_takes_a_window_of_ids_at_a_time_and_comes_round(
    sqlite_store: Store,
) -> None:
    store = sqlite_store
    await add_history(store, "a", 10)  # run ids 1 to 10
    assert isinstance(store, SqlStore)
    store.purge_window_ids = 4
    retention = Retention(store, FixedClock(NOW + 2 * DAY), keep_per_job=1000, max_age_s=86_400)
    swept = [await retention.sweep() for _ in range(3)]  # ids 0-3, 4-7, 8-11
    assert swept == [(3, False), (4, False), (3, False)]
    await add_history(store, "b", 2)  # the sweep has come round to id 0: it finds them
    assert sum([(await retention.sweep())[0] for _ in range(4)]) == 2
    assert await kept(store, "a") + await kept(store, "b") == 0


async def test_the_memory_stores_age_sweep_reads_a_stretch_of_runs_at_a_time_and_comes_round(
    store: Store,
) -> None:
    await add_history(store, "a", 10)
    assert isinstance(store, MemoryStore)
    store.purge_window_runs = 4
    retention = Retention(store, FixedClock(NOW + 2 * DAY), keep_per_job=1000, max_age_s=86_400)
    swept = [await retention.sweep() for _ in range(3)]  # runs 1-4, 5-8, 9-10
    assert swept == [(4, False), (4, False), (2, False)]
    await add_history(store, "b", 2)  # the sweep has come round to the oldest: it finds them
    assert sum([(await retention.sweep())[0] for _ in range(2)]) == 2
    assert await kept(store, "a") + await kept(store, "b") == 0


async def test_a_full_window_is_swept_again_before_moving_on(store: Store) -> None:
    await add_history(store, "a", 300)
    retention = Retention(store, FixedClock(NOW + 2 * DAY), keep_per_job=1000, max_age_s=86_400)
    assert await retention.sweep() == (250, True)  # a chunk is at most 250 runs: more to do
    assert await retention.sweep() == (50, False)
