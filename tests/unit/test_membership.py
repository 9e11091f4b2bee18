"""Membership on the memory store, whose clock (the database's, for leases) and this node's
monotonic clock are both moved by hand. The heartbeat itself runs every few milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime

from kairos.clock import to_us
from kairos.engine.membership import Membership
from kairos.engine.policies import Planner
from kairos.errors import StoreUnavailable
from kairos.models import JobRecord, JobSpec, RunStatus
from kairos.store.memory import MemoryStore
from tests.support.fakes import WAIT_S, FakeClock, eventually

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE_S = 10.0


class FlakyStore(MemoryStore):
    """The memory store; while ``down``, heartbeats fail as they do when the database is out
    of reach."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.down = False

    async def heartbeat(
        self, node_id: str, hostname: str, tasks: frozenset[str] = frozenset()
    ) -> None:
        if self.down:
            raise StoreUnavailable("the database is out of reach")
        await super().heartbeat(node_id, hostname, tasks)


class Observed:
    """What membership reported through its callbacks."""

    def __init__(self) -> None:
        self.takeovers = asyncio.Event()
        self.store_errors: list[str] = []

    def took_over(self) -> None:
        self.takeovers.set()

    def store_error(self, operation: str) -> None:
        self.store_errors.append(operation)


@asynccontextmanager
async def member(
    store: MemoryStore, clock: FakeClock, observed: Observed
) -> AsyncIterator[Membership]:
    """Node ``node-a``, joined to ``store``'s cluster until leaving."""
    membership = Membership(
        store,
        node_id="node-a",
        hostname="host-a",
        lease_s=LEASE_S,
        heartbeat_s=0.005,
        retries=1,
        on_takeover=observed.took_over,
        on_store_error=observed.store_error,
        monotonic=clock.monotonic,
    )
    async with AsyncExitStack() as stack:
        await membership.start(stack)
        yield membership


async def run_held_by(store: MemoryStore, node_id: str, clock: FakeClock) -> int:
    """Start a run of a new job on ``node_id``; return its id."""
    spec = JobSpec.model_validate(
        {
            "trigger": {"type": "interval", "hours": 1},
            "target": {"type": "python", "task": "work"},
        }
    )
    now_us = clock.now_us()
    await store.heartbeat(node_id, "host", frozenset({"work"}))
    await store.insert_job(JobRecord("hourly", spec, now_us, now_us, now_us, now_us))
    claim = await store.claim_due(now_us, 10, node_id, Planner())
    [started] = claim.started
    return started.run.id


async def test_the_first_beat_registers_the_node_and_leaving_removes_it() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock)
    async with member(store, clock, Observed()) as membership:
        [node] = await store.list_nodes()
        assert (node.id, node.hostname, node.started_us) == ("node-a", "host-a", to_us(START))
        assert membership.healthy
    assert await store.list_nodes() == []


async def test_a_node_silent_past_the_lease_is_taken_over() -> None:
    clock = FakeClock(START)
    store = MemoryStore(clock)
    await store.heartbeat("node-b", "host-b")
    held = await run_held_by(store, "node-b", clock)
    observed = Observed()
    clock.advance(LEASE_S)
    async with member(store, clock, observed):
        assert not observed.takeovers.is_set()  # silent for the lease exactly: still alive
        assert [node.id for node in await store.list_nodes()] == ["node-a", "node-b"]

        clock.advance(0.000_001)
        async with asyncio.timeout(WAIT_S):
            await observed.takeovers.wait()
        assert [node.id for node in await store.list_nodes()] == ["node-a"]
        runs = await store.list_runs(job_id="hourly", status=None, before_id=None, limit=10)
        retry, interrupted = runs
        assert (interrupted.id, interrupted.status) == (held, RunStatus.INTERRUPTED)
        assert (retry.attempt, retry.status, retry.node_id) == (2, RunStatus.SCHEDULED, None)


async def test_a_node_whose_beats_fail_for_longer_than_the_lease_turns_unhealthy() -> None:
    clock = FakeClock(START)
    store = FlakyStore(clock)
    observed = Observed()
    async with member(store, clock, observed) as membership:
        store.down = True
        await eventually(lambda: "heartbeat" in observed.store_errors, "a failed heartbeat")
        clock.advance(LEASE_S - 0.001)
        assert membership.healthy

        clock.advance(0.001)
        assert not membership.healthy

        store.down = False
        await eventually(lambda: membership.healthy, "a heartbeat that went through")
