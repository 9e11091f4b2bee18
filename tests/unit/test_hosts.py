"""Politeness per host: the adaptive limit, first come first served, rates, giving up."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from kairos.engine.hosts import INITIAL_LIMIT, HostGates, HostLimits, NoSlot, Signal

HOST = "target:80"


class FakeTime:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def gates(most: int = 100, **overrides: HostLimits) -> tuple[HostGates, FakeTime]:
    clock = FakeTime()
    return HostGates(HostLimits(most), overrides, monotonic=clock), clock


async def fill(gates: HostGates, count: int) -> list[float]:
    return [await gates.acquire(HOST, timeout_s=0) for _ in range(count)]


async def burst(
    gates: HostGates,
    clock: FakeTime,
    calls: int,
    took_s: float = 0.01,
    signal: int = Signal.OK,
    path: str = "/",
) -> list[int]:
    """Make ``calls`` calls at once, each taking ``took_s``; return how many ran each round."""
    pending = [asyncio.create_task(gates.acquire(HOST)) for _ in range(calls)]
    rounds = []
    while pending:
        for _ in range(3):
            await asyncio.sleep(0)
        running = [task for task in pending if task.done()]
        pending = [task for task in pending if not task.done()]
        rounds.append(len(running))
        clock.now_s += took_s
        for task in running:
            gates.release(HOST, task.result(), signal, path)
    return rounds


async def test_the_limit_starts_small_and_doubles_each_round_while_calls_are_fast() -> None:
    gates_, clock = gates()
    assert await burst(gates_, clock, 4 + 8 + 16 + 32) == [4, 8, 16, 32]


async def test_the_limit_never_passes_the_hosts_maximum() -> None:
    gates_, clock = gates(most=10)
    assert await burst(gates_, clock, 4 + 8 + 10 + 10) == [4, 8, 10, 10]


async def test_overload_halves_the_limit_once_per_round_then_it_grows_by_one_a_round() -> None:
    gates_, clock = gates(most=64)
    await burst(gates_, clock, 4 + 8 + 16 + 32 + 64)
    state = gates_.host(HOST)
    assert state.limit == 64
    await burst(gates_, clock, 64, signal=Signal.OVERLOAD)  # all refused: one halving, not 64
    assert state.limit == 32
    assert state.overloads == 64
    assert await burst(gates_, clock, 32 + 33 + 34) == [32, 33, 34]


async def test_a_call_far_slower_than_the_fastest_lately_counts_as_overload() -> None:
    gates_, clock = gates(most=16)
    await burst(gates_, clock, 4 + 8 + 16)
    state = gates_.host(HOST)
    assert state.limit == 16
    await burst(gates_, clock, 16, took_s=1.2)  # a SYN retransmitted: a second lost
    assert state.limit == 8


async def test_a_slow_endpoint_is_judged_against_itself_not_the_hosts_fast_ones() -> None:
    gates_, clock = gates(most=16)
    await burst(gates_, clock, 4 + 8 + 16, path="/ping")
    state = gates_.host(HOST)
    await burst(gates_, clock, 16 + 16, took_s=5.0, path="/report")
    assert (state.limit, state.overloads) == (16, 0)
    assert state.fastest_s == pytest.approx(0.01)
    await burst(gates_, clock, 16, took_s=1.2, path="/ping")
    assert state.limit == 8


async def test_slow_but_steady_hosts_are_not_overloaded() -> None:
    gates_, clock = gates()
    assert await burst(gates_, clock, 4 + 8 + 16 + 32, took_s=2.0) == [4, 8, 16, 32]


async def test_an_idle_limit_does_not_grow() -> None:
    gates_, clock = gates()
    for _ in range(50):
        [slot] = await fill(gates_, 1)
        clock.now_s += 0.01
        gates_.release(HOST, slot, Signal.OK)
    assert gates_.host(HOST).limit == INITIAL_LIMIT


async def test_calls_beyond_the_limit_wait_their_turn_in_order() -> None:
    gates_, _ = gates()
    slots = await fill(gates_, INITIAL_LIMIT)
    order: list[int] = []

    async def wait(n: int) -> None:
        await gates_.acquire(HOST)
        order.append(n)

    waiting = [asyncio.create_task(wait(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert order == []
    assert len(gates_.host(HOST).waiters) == 3
    for slot in slots[:3]:
        gates_.release(HOST, slot, Signal.NEUTRAL)
    await asyncio.gather(*waiting)
    assert order == [0, 1, 2]


async def test_a_call_may_ask_for_a_lower_limit_than_the_hosts() -> None:
    gates_, _ = gates()
    await gates_.acquire(HOST, max_concurrency=2)
    await gates_.acquire(HOST, max_concurrency=2)
    with pytest.raises(NoSlot):
        await gates_.acquire(HOST, max_concurrency=2, timeout_s=0.01)
    await gates_.acquire(HOST)  # a call without that wish still fits under the host's 4
    assert gates_.host(HOST).in_flight == 3


async def test_giving_up_leaves_the_queue_as_it_was() -> None:
    gates_, _ = gates()
    slots = await fill(gates_, INITIAL_LIMIT)
    with pytest.raises(NoSlot):
        await gates_.acquire(HOST, timeout_s=0.01)
    state = gates_.host(HOST)
    gates_.release(HOST, slots[0], Signal.NEUTRAL)
    assert (state.in_flight, len(state.waiters)) == (INITIAL_LIMIT - 1, 0)


async def test_a_rate_spaces_the_starts_of_calls() -> None:
    gates_ = HostGates(HostLimits(100), {"target": HostLimits(100, max_per_second=50)})
    loop = asyncio.get_running_loop()
    started = [loop.time()]
    slot = await gates_.acquire(HOST)
    gates_.release(HOST, slot, Signal.NEUTRAL)
    for _ in range(3):
        slot = await gates_.acquire(HOST)
        started.append(loop.time())
        gates_.release(HOST, slot, Signal.NEUTRAL)
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert all(gap >= 0.019 for gap in gaps), gaps


async def test_overrides_apply_by_host_and_port_or_by_host() -> None:
    gates_, _ = gates(
        **{"target:80": HostLimits(3, adaptive=False), "other": HostLimits(5, adaptive=False)}
    )
    assert gates_.host("target:80").limit == 3
    assert gates_.host("target:8080").limit == INITIAL_LIMIT
    assert gates_.host("other:443").limit == 5


async def test_a_host_that_closes_its_connections_skips_slow_start() -> None:
    gates_, clock = gates()
    assert await burst(gates_, clock, 4 + 5 + 6 + 7, signal=Signal.OK_CLOSING) == [4, 5, 6, 7]
