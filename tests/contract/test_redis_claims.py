"""Claims on Redis racing for the same fires: the optimistic transaction's guarantee that a fire
becomes a run exactly once, however replicas interleave."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from kairos.models import JobRecord
from kairos.store import FirePlan, Slots, Store, store_for_url
from tests.contract.test_store import NOW, S, every_minute, plan_every_minute, record
from tests.support.policies import PlanPolicy
from tests.support.redis import redis_store_url

pytestmark = pytest.mark.redis


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with redis_store_url() as url:
        yield url


async def opened(url: str) -> Store:
    store = store_for_url(url)
    await store.open()
    return store


def claim_elsewhere(url: str) -> int:
    """Another replica (its own connections, thread and event loop) claims what is due."""

    async def claim() -> int:
        other = await opened(url)
        try:
            return len((await other.claim_due(NOW, 10, "other", every_minute)).started)
        finally:
            await other.close()

    return asyncio.run(claim())


async def test_a_claim_that_another_replica_overtakes_is_made_again_and_takes_nothing(
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
                thread = threading.Thread(
                    target=lambda: taken_elsewhere.append(claim_elsewhere(url))
                )
                thread.start()
                thread.join()
            planned.append(job.next_fire_us or 0)
            return plan_every_minute(job, now_us, slots)

        claim = await store.claim_due(NOW, 10, "me", PlanPolicy(overtaken))
        assert taken_elsewhere == [1]
        assert claim.started == []
        assert claim.next_due_us == NOW + 60 * S
        # Planned once against the stale read; its commit refused, the claim read again and
        # found the fire gone.
        assert planned == [NOW]
        runs = await store.list_runs(job_id="a", status=None, before_id=None, limit=10)
        assert [(run.node_id, run.scheduled_for_us) for run in runs] == [("other", NOW)]
    finally:
        await store.close()


async def test_replicas_claiming_at_once_take_every_fire_exactly_once(url: str) -> None:
    stores = [await opened(url) for _ in range(3)]
    try:
        await stores[0].upsert_jobs([record(f"job-{i:03}", NOW + i) for i in range(200)])

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
