"""Python jobs go only to nodes that have their task (see ``Store.heartbeat``)."""

from __future__ import annotations

import asyncio

from kairos.models import JobRecord, JobSpec
from kairos.store import Store
from tests.contract.test_store import NOW, S, every_minute, record

CRAWL = JobSpec.model_validate(
    {
        "trigger": {"type": "interval", "seconds": 60},
        "target": {"type": "python", "task": "crawl", "kwargs": {"url": "https://example.com"}},
    }
)


def python_job(job_id: str, next_us: int | None = NOW) -> JobRecord:
    return JobRecord(job_id, CRAWL, next_us, next_us, NOW - S, NOW - S)


async def test_a_node_claims_python_jobs_only_for_the_tasks_it_has(store: Store) -> None:
    await store.heartbeat("plain", "host-a")
    await store.heartbeat("worker", "host-b", frozenset({"crawl", "index"}))
    await store.insert_job(python_job("p"))
    await store.insert_job(record("h", NOW))

    plain = await store.claim_due(NOW, 10, "plain", every_minute)
    assert [s.run.job_id for s in plain.started] == ["h"]
    # What it cannot call is not its next work either: it would wake for nothing.
    assert plain.next_due_us == NOW + 60 * S
    worker = await store.claim_due(NOW, 10, "worker", every_minute)
    assert [s.run.job_id for s in worker.started] == ["p"]


async def test_a_python_job_stays_due_until_a_node_with_its_task_beats(store: Store) -> None:
    await store.heartbeat("plain", "host-a")
    await store.insert_job(python_job("p"))
    assert (await store.claim_due(NOW + 5 * S, 10, "plain", every_minute)).started == []
    assert (await store.get_job("p")).next_run_us == NOW
    await store.heartbeat("plain", "host-a", frozenset({"crawl"}))  # the task registered later
    claim = await store.claim_due(NOW + 5 * S, 10, "plain", every_minute)
    assert [s.run.scheduled_for_us for s in claim.started] == [NOW]


async def test_queued_runs_of_a_python_job_wait_for_a_node_with_its_task(store: Store) -> None:
    await store.heartbeat("plain", "host-a")
    await store.heartbeat("worker", "host-b", frozenset({"crawl"}))
    await store.insert_job(python_job("p", None))
    manual = await store.add_manual_run("p", NOW)
    assert (await store.claim_due(NOW, 10, "plain", every_minute)).started == []
    claimed = (await store.claim_due(NOW, 10, "worker", every_minute)).started
    assert [s.run.id for s in claimed] == [manual.id]


async def test_nodes_list_their_tasks_and_forget_them_when_they_go(store: Store) -> None:
    await store.heartbeat("worker", "host-b", frozenset({"crawl", "index"}))
    await store.heartbeat("other", "host-c", frozenset({"crawl"}))
    tasks = {node.id: node.tasks for node in await store.list_nodes()}
    assert tasks == {"worker": {"crawl", "index"}, "other": {"crawl"}}
    await store.heartbeat("worker", "host-b", frozenset({"index"}))
    await store.deregister_node("other")
    assert {n.id: n.tasks for n in await store.list_nodes()} == {"worker": {"index"}}
    await store.insert_job(python_job("p"))
    await asyncio.sleep(0.01)
    assert await store.take_over(lease_us=1000, retries=1, policy=every_minute) == ["worker"]
    await store.heartbeat("again", "host-d")
    # A node that lost its tasks' rows with its registration claims none of them.
    assert (await store.claim_due(NOW, 10, "worker", every_minute)).started == []
