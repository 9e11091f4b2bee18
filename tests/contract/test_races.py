"""Changes that race across processes, on stores several processes share: each change of another
process is made in a transaction held open at the point where it would have interleaved, and
the store's own change must wait for it and then act on what it committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import pytest
from sqlalchemy.engine import make_url

from kairos.engine.policies import Planner
from kairos.errors import JobNotFound
from kairos.models import RunStatus
from kairos.store import FinishedRun, Store
from tests.contract.test_store import NOW, SPEC, S, every_minute, failing, fire_and_finish, record

pytestmark = pytest.mark.postgres

REPLACED = SPEC.model_copy(update={"max_instances": 3})


@pytest.fixture(autouse=True)
def shared(store_url: str) -> None:
    # The other process's transaction is held open at the interleaving point through a
    # PostgreSQL connection of its own.
    if not store_url.startswith("postgresql"):
        pytest.skip("races staged on PostgreSQL's row locks")


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@asynccontextmanager
async def elsewhere(url: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """Another process's connection; what it changes stays locked until it commits."""
    async with await psycopg.AsyncConnection.connect(_libpq(url)) as conn:
        yield conn


async def until_waiting(url: str) -> None:
    """Wait until a statement in the database waits for a lock."""
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with await psycopg.AsyncConnection.connect(_libpq(url), autocommit=True) as conn:
        async with asyncio.timeout(5):
            while True:
                if await (await conn.execute(query)).fetchone() == (1,):
                    return
                await asyncio.sleep(0.01)


async def replace_job_a(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    """What a ``PUT`` of job "a" (not paused, due in a minute) writes."""
    await conn.execute(
        "UPDATE kairos_jobs SET spec = %s, paused = false, pause_reason = NULL, failures = 0,"
        " next_fire_us = %s, next_run_us = %s, updated_us = %s WHERE id = 'a'",
        (REPLACED.model_dump_json(), NOW + 60 * S, NOW + 60 * S, NOW + S),
    )


async def test_a_run_its_node_finishes_while_another_takes_it_over_keeps_its_outcome(
    store: Store, store_url: str
) -> None:
    await store.insert_job(record("a", NOW))
    run = (await store.claim_due(NOW, 1, "n1", every_minute)).started[0].run
    async with elsewhere(store_url) as node:
        finish = "UPDATE kairos_runs SET status = 'succeeded', finished_us = %s WHERE id = %s"
        await node.execute(finish, (NOW + S, run.id))
        taking_over = asyncio.create_task(
            store.interrupt_running("n1", retries=1, policy=every_minute)
        )
        await until_waiting(store_url)
        await node.commit()
    assert await taking_over == 0
    assert (await store.get_run(run.id)).status is RunStatus.SUCCEEDED
    assert len(await store.list_runs(job_id="a", status=None, before_id=None, limit=5)) == 1


async def test_a_run_queued_while_its_job_is_deleted_is_refused(
    store: Store, store_url: str
) -> None:
    await store.insert_job(record("a", NOW))
    async with elsewhere(store_url) as deleting:
        await deleting.execute("DELETE FROM kairos_jobs WHERE id = 'a'")
        queuing = asyncio.create_task(store.add_manual_run("a", NOW))
        await until_waiting(store_url)
        await deleting.execute(
            "UPDATE kairos_runs SET status = 'skipped' WHERE job_id = 'a' AND status = 'scheduled'"
        )
        await deleting.commit()
    with pytest.raises(JobNotFound):
        await queuing
    assert await store.list_runs(job_id="a", status=None, before_id=None, limit=5) == []


async def test_a_job_replaced_while_its_breakers_probe_succeeds_stays_replaced(
    store: Store, store_url: str
) -> None:
    await store.insert_job(record("a", NOW))
    await fire_and_finish(store, NOW, failing(limit=1, next_probe_us=NOW + 30 * S))
    probe = (await store.claim_due(NOW + 30 * S, 10, "n", every_minute)).started[0].run
    success = failing(failed=False, probe=True, resume=(NOW + 90 * S, NOW + 90 * S))
    done = FinishedRun(probe.id, RunStatus.SUCCEEDED, NOW + 30 * S, NOW + 31 * S, verdict=success)
    async with elsewhere(store_url) as putting:
        await replace_job_a(putting)
        finishing = asyncio.create_task(store.finish_runs("n", [done]))
        await until_waiting(store_url)
        await putting.commit()
    await finishing
    job = await store.get_job("a")
    assert (job.spec, job.next_run_us) == (REPLACED, NOW + 60 * S)


async def test_a_job_replaced_while_its_probe_is_interrupted_gets_no_probe(
    store: Store, store_url: str
) -> None:
    await store.insert_job(record("a", NOW, auto_resume_after=30.0))
    await fire_and_finish(store, NOW, failing(limit=1, next_probe_us=NOW + 30 * S))
    assert len((await store.claim_due(NOW + 30 * S, 10, "n", Planner())).started) == 1
    assert (await store.get_job("a")).next_run_us is None  # while its probe runs
    async with elsewhere(store_url) as putting:
        await replace_job_a(putting)
        interrupting = asyncio.create_task(
            store.interrupt_running("n", retries=0, policy=every_minute)
        )
        await until_waiting(store_url)
        await putting.commit()
    assert await interrupting == 1
    job = await store.get_job("a")
    assert (job.spec, job.pause_reason, job.next_run_us) == (REPLACED, None, NOW + 60 * S)


@pytest.mark.parametrize("cancelled", [True, False])
async def test_an_outcome_recorded_while_its_run_is_being_cancelled_follows_the_cancel(
    store: Store, store_url: str, cancelled: bool
) -> None:
    """The cancel holds the run; the outcome waits for it. A cancel that commits leaves the
    outcome out (of the run and of its job's counts); one rolled back leaves it in."""
    await store.insert_job(record("a", NOW))
    run = (await store.claim_due(NOW, 1, "n", every_minute)).started[0].run
    done = FinishedRun(run.id, RunStatus.SUCCEEDED, NOW, NOW + 2 * S, 200)
    async with elsewhere(store_url) as cancelling:
        cancel = "UPDATE kairos_runs SET status = 'cancelled', finished_us = %s WHERE id = %s"
        await cancelling.execute(cancel, (NOW + S, run.id))
        finishing = asyncio.create_task(store.finish_runs("n", [done]))
        await until_waiting(store_url)
        await (cancelling.commit() if cancelled else cancelling.rollback())
    await finishing
    expected = RunStatus.CANCELLED if cancelled else RunStatus.SUCCEEDED
    assert (await store.get_run(run.id)).status is expected
    counts = (await store.job_run_counts(["a"]))["a"]
    assert counts.counts[RunStatus.SUCCEEDED] == (0 if cancelled else 1)
    assert counts.last_status is (None if cancelled else RunStatus.SUCCEEDED)
