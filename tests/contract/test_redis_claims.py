"""Claims on Redis racing for the same fires and jobs: the commit's checks, job by job, that what
the claim planned from is unchanged, so that a fire becomes a run exactly once however replicas
interleave, and a replica keeps what it won of an overlapping claim."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from kairos.identity import Actor
from kairos.models import JobRecord, RunStatus
from kairos.store import FinishedRun, FirePlan, Slots, Store, store_for_url
from kairos.store.redis import stats
from kairos.store.redis.store import RedisStore
from tests.contract.test_store import NOW, S, every_minute, plan_every_minute, record
from tests.support.policies import PlanPolicy
from tests.support.redis import redis_store_url

pytestmark = pytest.mark.redis
T = TypeVar("T")


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with redis_store_url() as url:
        yield url


async def opened(url: str) -> Store:
    store = store_for_url(url)
    await store.open()
    return store


def elsewhere(url: str, change: Callable[[Store], Awaitable[T]]) -> T:
    """``change`` made by another replica (its own connections, thread and event loop), now."""
    made: list[T] = []

    async def make() -> None:
        other = await opened(url)
        try:
            made.append(await change(other))
        finally:
            await other.close()

    thread = threading.Thread(target=lambda: asyncio.run(make()))
    thread.start()
    thread.join()
    return made[0]


def claim_elsewhere(url: str, limit: int = 10) -> int:
    """Another replica claims what is due (the ``limit`` oldest)."""

    async def claim(other: Store) -> int:
        return len((await other.claim_due(NOW, limit, "other", every_minute)).started)

    return elsewhere(url, claim)


async def test_a_claim_that_another_replica_overtakes_takes_nothing_and_plans_once(
    url: str,
) -> None:
    store = await opened(url)
    try:
        await store.insert_job(record("a", NOW))
        planned: list[int] = []
        taken_elsewhere: list[int] = []

        def overtaken(job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
            # Between this claim's reads and its commit, another replica claims the same fire.
            if not planned:
                taken_elsewhere.append(claim_elsewhere(url))
            planned.append(job.next_fire_us or 0)
            return plan_every_minute(job, now_us, slots)

        claim = await store.claim_due(NOW, 10, "me", PlanPolicy(overtaken))
        assert taken_elsewhere == [1]
        assert claim.started == []
        assert claim.next_due_us == NOW + 60 * S
        # Planned once against the stale read; the commit found the job changed and left it.
        assert planned == [NOW]
        runs = await store.list_runs(job_id="a", status=None, before_id=None, limit=10)
        assert [(run.node_id, run.scheduled_for_us) for run in runs] == [("other", NOW)]
    finally:
        await store.close()


async def test_a_claim_keeps_the_jobs_another_replica_did_not_take_meanwhile(url: str) -> None:
    store = await opened(url)
    try:
        await store.upsert_jobs([record(job_id, NOW) for job_id in ("a", "b", "c")])
        planned: list[str] = []

        def overlapped(job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
            if not planned:
                assert claim_elsewhere(url, limit=1) == 1  # takes "a", the oldest
            planned.append(job.id)
            return plan_every_minute(job, now_us, slots)

        claim = await store.claim_due(NOW, 10, "me", PlanPolicy(overlapped))
        assert sorted(s.run.job_id for s in claim.started) == ["b", "c"]
        assert planned == ["a", "b", "c"]
        for job_id, node in [("a", "other"), ("b", "me"), ("c", "me")]:
            runs = await store.list_runs(job_id=job_id, status=None, before_id=None, limit=10)
            assert [(run.node_id, run.scheduled_for_us) for run in runs] == [(node, NOW)]
            assert (await store.get_job(job_id)).next_run_us == NOW + 60 * S
    finally:
        await store.close()


async def test_a_job_replaced_while_its_claim_plans_is_left_as_replaced(url: str) -> None:
    store = await opened(url)
    try:
        await store.upsert_jobs([record("a", NOW), record("b", NOW)])

        def replaced_meanwhile(job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
            if job.id == "a":
                elsewhere(url, lambda other: other.upsert_jobs([record("b", NOW + 600 * S)]))
            return plan_every_minute(job, now_us, slots)

        claim = await store.claim_due(NOW, 10, "me", PlanPolicy(replaced_meanwhile))
        assert [s.run.job_id for s in claim.started] == ["a"]
        assert claim.next_due_us == NOW + 60 * S
        assert (await store.get_job("b")).next_run_us == NOW + 600 * S
        assert await store.list_runs(job_id="b", status=None, before_id=None, limit=10) == []
    finally:
        await store.close()


async def test_a_run_cancelled_while_its_outcome_goes_with_a_claim_stays_cancelled(
    url: str,
) -> None:
    store = await opened(url)
    try:
        await store.insert_job(record("a", NOW))
        (started,) = (await store.claim_due(NOW, 10, "me", every_minute)).started
        run_id = started.run.id
        await store.insert_job(record("b", NOW))

        def cancelled_meanwhile(job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
            by = Actor("alice", NOW + S)
            elsewhere(url, lambda other: other.cancel_run(run_id, by=by))
            return plan_every_minute(job, now_us, slots)

        outcome = FinishedRun(run_id, RunStatus.SUCCEEDED, NOW, NOW + S, 200)
        await store.claim_due(NOW, 10, "me", PlanPolicy(cancelled_meanwhile), finished=[outcome])
        assert (await store.get_run(run_id)).status is RunStatus.CANCELLED
        # Its job's count of runs in flight went down once, by the cancel: the next fire starts,
        # and the one after it finds that one in flight (``max_instances`` 1).
        for at, started_a in [(NOW + 60 * S, True), (NOW + 120 * S, False)]:
            claim = await store.claim_due(at, 10, "me", every_minute)
            assert ("a" in {s.run.job_id for s in claim.started}) is started_a
    finally:
        await store.close()


async def test_a_claim_as_large_as_the_setting_allows_takes_every_job(url: str) -> None:
    store = await opened(url)
    try:
        jobs = 8_500  # more than a Lua script may pass to one command at once
        for start in range(0, jobs, 5_000):
            batch = range(start, min(start + 5_000, jobs))
            await store.upsert_jobs([record(f"job-{i:05}", NOW) for i in batch])
        claim = await store.claim_due(NOW, 10_000, "me", every_minute)
        assert len({s.run.job_id for s in claim.started}) == jobs
        assert claim.next_due_us == NOW + 60 * S
    finally:
        await store.close()


async def test_replicas_claiming_at_once_take_every_fire_exactly_once(url: str) -> None:
    stores = [await opened(url) for _ in range(3)]
    try:
        await stores[0].upsert_jobs([record(f"job-{i:03}", NOW + i) for i in range(200)])
        for n, store in enumerate(stores):  # several nodes beating: claims spread their pages
            await store.heartbeat(f"node-{n}", "host")

        async def claim_all(store: Store, node: str) -> list[tuple[str, int]]:
            taken: list[tuple[str, int]] = []
            while True:
                claim = await store.claim_due(NOW + S, 7, node, every_minute)
                taken += [(s.run.job_id, s.run.scheduled_for_us) for s in claim.started]
                if not claim.exhausted:
                    return taken

        claimed = await asyncio.gather(
            *(claim_all(store, f"node-{n}") for n, store in enumerate(stores))
        )
        every = Counter(fire for taken in claimed for fire in taken)
        assert set(every.values()) == {1}
        assert len(every) == 200
    finally:
        for store in stores:
            await store.close()


async def summaries(store: RedisStore) -> dict[str, Any]:
    """The run ledger's summaries as stored: runs ended per minute, failing jobs, jobs' counts."""
    client, k = store.client, store.k
    found: dict[str, Any] = {
        k.ended_minutes: await client.hgetall(k.ended_minutes),
        k.failing: await client.zrange(k.failing, 0, -1, withscores=True),
    }
    async for key in client.scan_iter(match=k.job_stats("*")):
        found[key] = await client.hgetall(key)
    return found


async def test_the_summaries_a_claim_keeps_are_those_its_runs_make(url: str) -> None:
    """What the claim's commit counts of the runs it ends (outcomes, skipped fires, missed
    retries) is what the summaries built afresh from those runs hold."""
    store = await opened(url)
    assert isinstance(store, RedisStore)
    try:
        jobs = [f"job-{i:02}" for i in range(30)]
        await store.upsert_jobs([record(job_id, NOW) for job_id in jobs])
        first = (await store.claim_due(NOW, 100, "me", every_minute)).started
        skipped = await store.claim_due(NOW + 60 * S, 100, "me", every_minute)
        assert skipped.recorded == {RunStatus.SKIPPED: 30}  # each job's first run in flight

        def outcome(i: int, run_id: int) -> FinishedRun:
            if i % 3 == 0:  # retried: due long before the claim, and missed by it
                at = NOW + 30 * S + i
                return FinishedRun(run_id, RunStatus.FAILED, NOW, at, retry_due_us=NOW + S)
            status = RunStatus.FAILED if i % 3 == 1 else RunStatus.SUCCEEDED
            return FinishedRun(run_id, status, NOW, NOW + 90 * S + i)

        done = [outcome(i, s.run.id) for i, s in enumerate(first)]
        second = await store.claim_due(NOW + 120 * S, 100, "me", every_minute, finished=done)
        assert second.recorded == {RunStatus.MISSED: 10}
        assert len(second.started) == 30
        done = [
            FinishedRun(s.run.id, RunStatus.FAILED if i % 2 else RunStatus.SUCCEEDED, NOW, at)
            for i, s in enumerate(second.started)
            for at in [NOW + 150 * S + i]
        ]
        await store.claim_due(NOW + 180 * S, 100, "me", every_minute, finished=done)
        kept = await summaries(store)
        assert len(kept[store.k.failing]) == 15
        await store.client.delete(*kept)
        await stats.rebuild(store.client, store.k)
        assert await summaries(store) == kept
    finally:
        await store.close()


async def test_a_store_of_the_layout_before_summaries_gets_them_once_however_many_open_it(
    url: str,
) -> None:
    """Layout 1 had no summaries: three replicas opening such a store at once build them once
    (not three times, and not on top of what a rebuild cut short left), from its runs and jobs:
    a deleted job's failure is counted but does not make it failing; a tripped job is tripped."""
    store = await opened(url)
    assert isinstance(store, RedisStore)
    k = store.k
    try:
        jobs = [f"job-{i:02}" for i in range(6)]
        await store.upsert_jobs([record(job_id, NOW) for job_id in jobs])
        first = (await store.claim_due(NOW, 100, "me", every_minute)).started
        done = [
            FinishedRun(s.run.id, RunStatus.FAILED if i % 2 else RunStatus.SUCCEEDED, NOW, NOW + i)
            for i, s in enumerate(first)
        ]
        await store.finish_runs("me", done)
        await store.delete_job("job-01", by=Actor("test", NOW))  # its last call failed
        tripped = dataclasses.replace(record("job-02", None), pause_reason="tripped")
        await store.upsert_jobs([tripped])
        kept = await summaries(store)
        kept[k.tripped] = await store.client.zrange(k.tripped, 0, -1)
        assert kept[k.tripped] == ["job-02"]
        assert [job for job, _ in kept[k.failing]] == ["job-03", "job-05"]
        # Layout 1: no summaries, but what a rebuild stopped halfway would have left.
        await store.client.delete(*kept)
        await store.client.hincrby(k.job_stats("job-00"), "succeeded", 5)
        await store.client.set(k.schema, 1)
    finally:
        await store.close()

    replicas = [store_for_url(url) for _ in range(3)]
    await asyncio.gather(*(replica.open() for replica in replicas))
    try:
        again = replicas[0]
        assert isinstance(again, RedisStore)
        found = await summaries(again)
        found[k.tripped] = await again.client.zrange(k.tripped, 0, -1)
        assert found == kept
        assert await again.client.get(k.schema) == "2"
    finally:
        for replica in replicas:
            await replica.close()
