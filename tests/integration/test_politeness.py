"""Calls that never left are tried again; a busy host makes its own runs wait, not others'."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kairos.engine import Scheduler
from kairos.executors.base import Call
from kairos.executors.guard import OutboundGuard
from kairos.executors.http import HttpExecutor
from kairos.models import HttpTarget, RunStatus
from tests.integration.test_engine import make_scheduler, soon, spec, wait_runs
from tests.support.server import free_port
from tests.support.target import RecordingTarget


@pytest.fixture
def full_listener() -> Iterator[int]:
    """A port whose listen queue is full and never accepted from: connecting there hangs, as
    it does at a server whose backlog overflowed."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(8):  # until the kernel stops completing handshakes
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [*fillers, server]:
        sock.close()


@pytest.fixture
async def scheduler(tmp_path: Path) -> AsyncIterator[Scheduler]:
    engine = make_scheduler(tmp_path, host_max_concurrency=2)
    await engine.start()
    yield engine
    await engine.stop()


async def test_a_refused_connection_and_a_connect_timeout_are_calls_never_sent(
    full_listener: int,
) -> None:
    executor = HttpExecutor(
        max_connections=10,
        response_excerpt_bytes=0,
        default_timeout_s=5,
        guard=OutboundGuard(block_private=False),
        connect_timeout_s=0.3,
    )
    await executor.start()
    try:
        refused = await executor.execute(call(f"http://127.0.0.1:{free_port()}/"))
        hung = await executor.execute(call(f"http://127.0.0.1:{full_listener}/"))
    finally:
        await executor.close()
    assert (refused.sent, refused.retryable) == (False, True)
    assert "Connect call failed" in (refused.error or "") or "refused" in (refused.error or "")
    assert (hung.sent, hung.retryable) == (False, True)
    assert hung.error == "cannot connect to 127.0.0.1: no connection within 0.3 s"


async def test_fires_due_while_the_target_refuses_are_delivered_once_it_is_back(
    scheduler: Scheduler,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/back"
    for n in range(5):
        await scheduler.create_job(f"j{n}", spec(url, soon(0.1)))
    await wait_runs(scheduler, "j0", lambda runs: bool(runs))
    await asyncio.sleep(1.0)  # the target stays away a while, refusing every connection
    async with RecordingTarget(port=port) as target:
        await target.wait_for(5, deadline_s=15)
        for n in range(5):
            [run] = await wait_runs(
                scheduler, f"j{n}", lambda r: bool(r) and r[0].finished_us is not None
            )
            assert (run.status, run.attempt) == (RunStatus.SUCCEEDED, 1)
        assert sorted(d.headers["X-Kairos-Job-Id"] for d in target.deliveries) == [
            f"j{n}" for n in range(5)
        ]
    assert scheduler.hosts()[0].connect_retries > 0


async def test_a_call_that_never_connects_fails_when_its_grace_is_spent(
    scheduler: Scheduler,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/never"
    await scheduler.create_job("never", spec(url, soon(0.1), misfire_grace_time=1))
    [run] = await wait_runs(scheduler, "never", lambda r: bool(r) and r[0].finished_us is not None)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith("cannot connect to 127.0.0.1")
    assert "connection attempts in" in run.error
    assert run.error.endswith("the request was never sent)")


async def test_runs_waiting_for_a_busy_host_do_not_hold_back_other_hosts(
    scheduler: Scheduler,
) -> None:
    async with RecordingTarget() as slow, RecordingTarget() as fast:
        for n in range(20):  # ten times what the host may have in flight
            await scheduler.create_job(
                f"slow{n}", spec(slow.url("/s?delay=3"), soon(0.1), misfire_grace_time=1)
            )
        await slow.wait_for(2)
        await scheduler.create_job("fast", spec(fast.url("/f"), soon(0.1)))
        await fast.wait_for(1, deadline_s=2)
        [missed] = await wait_runs(
            scheduler, "slow19", lambda r: bool(r) and r[0].finished_us is not None
        )
    assert missed.status is RunStatus.MISSED
    assert missed.error is not None
    assert missed.error.startswith("not called: 127.0.0.1:")
    assert "had no free slot" in missed.error


def call(url: str) -> Call:
    return Call("j", 1, 0, 1, HttpTarget.model_validate({"url": url}))
