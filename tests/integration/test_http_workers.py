"""Calls made by worker processes: what only a pool of processes can get wrong (the calls
themselves are tested against both executors in ``test_http_executor``)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest

from kairos.executors.base import Call
from kairos.executors.guard import OutboundGuard
from kairos.executors.workers import WorkerPoolExecutor
from kairos.models import HttpTarget
from tests.integration.test_http_executor import OPTIONS, SCHEDULED_US
from tests.support.target import RecordingTarget


@pytest.fixture
async def target() -> AsyncIterator[RecordingTarget]:
    async with RecordingTarget() as server:
        yield server


def call(url: str, run_id: int = 1) -> Call:
    return Call("job", run_id, SCHEDULED_US, 1, HttpTarget.model_validate({"url": url}))


async def test_a_worker_that_dies_fails_its_calls_as_retryable_and_is_replaced(
    target: RecordingTarget,
) -> None:
    pool = WorkerPoolExecutor(2, OPTIONS)
    await pool.start()
    try:
        urls = [target.url(f"/hang{i}?delay=30") for i in range(4)]
        hanging = [asyncio.ensure_future(pool.execute(call(url, i))) for i, url in enumerate(urls)]
        await target.wait_for(4)  # the least busy worker takes each: two calls each
        victim = pool._workers[0]
        assert len(victim.pending) == 2
        os.kill(victim.process.pid, signal.SIGKILL)
        lost = await asyncio.wait_for(asyncio.gather(*hanging[::2]), 15)
        assert all(not o.succeeded and o.retryable for o in lost)
        assert all("worker process" in (o.error or "") for o in lost)
        assert not any(task.done() for task in hanging[1::2])  # the other worker's calls go on

        for _ in range(300):  # the replacement takes a moment to start
            if pool._workers[0] is not victim:
                break
            await asyncio.sleep(0.05)
        assert pool._workers[0] is not victim
        calls = (pool.execute(call(target.url("/ok"), 10 + i)) for i in range(6))
        assert all(o.succeeded for o in await asyncio.gather(*calls))
        for task in hanging[1::2]:
            task.cancel()
    finally:
        await pool.close()


async def test_workers_keep_to_the_outbound_guard() -> None:
    pool = WorkerPoolExecutor(1, OPTIONS | {"guard": OutboundGuard(block_private=True)})
    await pool.start()
    try:
        refused = await pool.execute(call("http://127.0.0.1:9/"))
        metadata = await pool.execute(call("http://169.254.169.254/latest/meta-data/"))
    finally:
        await pool.close()
    assert not refused.succeeded
    assert "refused" in (refused.error or "")
    assert not metadata.succeeded
    assert "refused" in (metadata.error or "")


async def test_closing_the_pool_ends_its_processes() -> None:
    pool = WorkerPoolExecutor(2, OPTIONS)
    await pool.start()
    processes = [worker.process for worker in pool._workers]
    await pool.close()
    assert all(process.returncode is not None for process in processes)
