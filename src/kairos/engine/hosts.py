"""Politeness per target host: how many calls one replica has in flight to a host, and how fast
it starts them.

A scheduler is fast enough to knock over what it calls: a burst of fires due at one instant,
opened as that many connections to one small server, overflows its accept queue, and the
dropped connections wait out TCP's retransmissions (1, 3, 7, 15 s) until their calls time out.
So every call first takes a slot at its host (``host:port``). Each host has a concurrency limit
that adapts as TCP's congestion window does:

- it starts small (``INITIAL_LIMIT``) and, while calls succeed promptly and the slots are in use,
  grows by one per success (slow start: doubling every round trip) up to the host's
  ``max_concurrency``; after its first sign of overload it grows by one per round trip only;
- it halves on a sign of overload: a connection refused or timed out, ``429`` or ``503``, or a
  call far slower than the fastest the host answered lately (a retransmitted SYN costs a
  second); at most once per round of calls, since the calls already in flight when the limit
  fell were started under the old limit and their signals say nothing new.

Calls wait for a slot in arrival order. An optional rate (``max_per_second``) spaces starts. A
job's target may ask for lower limits than the host's; they apply to its own calls.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["INITIAL_LIMIT", "HostGates", "HostLimits", "HostState", "NoSlot", "Signal"]

INITIAL_LIMIT = 4
"""Calls in flight to a host before anything is known of it: few enough for a threaded server
with Python's default listen backlog of 5."""
_SLOW_FACTOR = 2.0
_SLOW_MARGIN_S = 0.5
"""A call is a sign of overload when it took longer than ``_SLOW_FACTOR`` times the fastest of
late plus ``_SLOW_MARGIN_S``: a dropped SYN adds a whole second, a busy local CPU tens of ms."""
_BASELINE_WINDOW_S = 10.0
_PATHS_KEPT = 64
_IDLE_FORGET_S = 300.0
"""A host with nothing in flight or waiting for this long is forgotten (its limit relearned)."""


class NoSlot(Exception):
    """No slot at the host came free before the caller's deadline."""


@dataclass(frozen=True, slots=True)
class HostLimits:
    max_concurrency: int
    max_per_second: float | None = None
    adaptive: bool = True
    """False: the limit is ``max_concurrency`` from the start and never moves."""


class Signal:
    """What a finished call says of its host's load."""

    OK = 0
    """Answered promptly: the host keeps up."""
    OVERLOAD = 1
    """Refused, timed out on connect, 429/503, or far slower than lately."""
    NEUTRAL = 2
    """Says nothing of load (the call was refused by our own guard, or cancelled)."""
    OK_CLOSING = 3
    """Answered promptly, then closed the connection: every call to such a host is a new TCP
    handshake, and a burst of handshakes is what overflows a small server's accept queue
    (long before its answers slow down), so its limit skips slow start and grows by one a
    round."""


class _Fastest:
    """The fastest answer of the current and the previous baseline window."""

    __slots__ = ("_current_s", "_previous_s", "_window_end_s")

    def __init__(self, now_s: float) -> None:
        self._current_s = self._previous_s = float("inf")
        self._window_end_s = now_s + _BASELINE_WINDOW_S

    @property
    def seconds(self) -> float:
        return min(self._current_s, self._previous_s)

    def outpaced_by(self, took_s: float, now_s: float) -> bool:
        """Whether an answer that took ``took_s`` was far slower than the fastest of late
        (then count it in)."""
        slow = took_s > self.seconds * _SLOW_FACTOR + _SLOW_MARGIN_S
        if now_s >= self._window_end_s:
            self._current_s, self._previous_s = float("inf"), self._current_s
            self._window_end_s = now_s + _BASELINE_WINDOW_S
        self._current_s = min(self._current_s, took_s)
        return slow


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[None]
    max_concurrency: int | None
    interval_s: float


class HostState:
    """One host's limit, its calls in flight and waiting, and what it has shown lately."""

    def __init__(self, key: str, limits: HostLimits, now_s: float) -> None:
        self.key = key
        self.limits = limits
        self.limit = float(INITIAL_LIMIT if limits.adaptive else limits.max_concurrency)
        self.limit = min(self.limit, limits.max_concurrency)
        self._threshold = float(limits.max_concurrency)
        """Slow start below this, one per round trip above it (TCP's ssthresh)."""
        self._credit = 0
        self.in_flight = 0
        self.waiters: deque[_Waiter] = deque()
        self.calls = 0
        self.overloads = 0
        self.connect_retries = 0
        self.last_error: str | None = None
        self.last_used_s = now_s
        rate = limits.max_per_second
        self._interval_s = 1.0 / rate if rate else 0.0
        self._last_start_s = -float("inf")
        self._fastest: dict[str, _Fastest] = {}
        """The fastest answers of late, by path: one host may serve a 10-ms endpoint and a
        10-s report, and the report is no sign of overload."""
        self._decreased_at_s = -1.0
        self.timer: asyncio.TimerHandle | None = None
        """Wakes the first waiter when the rate lets it start."""

    @property
    def fastest_s(self) -> float | None:
        """The fastest answer of late on any path; None before any."""
        return min((f.seconds for f in self._fastest.values()), default=None)

    def admits(self, cap: int | None) -> bool:
        """Whether one more call may start, ``cap`` lowering the limit for it."""
        limit = int(self.limit) if cap is None else min(int(self.limit), cap)
        return self.in_flight < max(limit, 1)

    def finished(self, started_s: float, now_s: float, signal: int, path: str) -> None:
        self.in_flight -= 1
        self.last_used_s = now_s
        if signal == Signal.NEUTRAL:
            return
        if signal == Signal.OK_CLOSING:
            self._threshold = min(self._threshold, self.limit)
            signal = Signal.OK
        if signal == Signal.OK:  # only answers tell how fast the host answers
            fastest = self._fastest.pop(path, None) or _Fastest(now_s)
            self._fastest[path] = fastest  # the newest last: the oldest is forgotten first
            if len(self._fastest) > _PATHS_KEPT:
                del self._fastest[next(iter(self._fastest))]
            if fastest.outpaced_by(now_s - started_s, now_s):
                signal = Signal.OVERLOAD
        if signal == Signal.OVERLOAD:
            self.overloads += 1
        if not self.limits.adaptive:
            return
        if signal == Signal.OVERLOAD:
            if started_s >= self._decreased_at_s:
                self.limit = self._threshold = max(1.0, self.limit / 2)
                self._decreased_at_s = now_s
        elif self.waiters or self.in_flight + 1 >= self.limit / 2:  # grow only a limit in use
            if self.limit < self._threshold:
                self.limit += 1
            else:  # one more for each full limit's worth of calls that succeeded
                self._credit += 1
                if self._credit < int(self.limit):
                    return
                self.limit += 1
                self._credit = 0
            self.limit = min(float(self.limits.max_concurrency), self.limit)

    def start_at(self, interval_s: float, now_s: float) -> float:
        """When a call may start under the host's rate and its own (``interval_s`` between
        starts); ``now_s`` if it may now."""
        return max(now_s, self._last_start_s + max(self._interval_s, interval_s))

    def started(self, now_s: float) -> None:
        self.in_flight += 1
        self.calls += 1
        self.last_used_s = self._last_start_s = now_s


class HostGates:
    """The slots of every host this replica calls."""

    def __init__(
        self,
        default: HostLimits,
        overrides: dict[str, HostLimits] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default = default
        self._overrides = overrides or {}
        self._now = monotonic
        self._hosts: dict[str, HostState] = {}
        self._swept_s = monotonic()

    def hosts(self) -> list[HostState]:
        return list(self._hosts.values())

    def host(self, key: str) -> HostState:
        state = self._hosts.get(key)
        if state is None:
            self._forget_idle()
            limits = self._overrides.get(key) or self._overrides.get(key.rpartition(":")[0])
            state = self._hosts[key] = HostState(key, limits or self._default, self._now())
        return state

    async def acquire(
        self,
        key: str,
        *,
        max_concurrency: int | None = None,
        max_per_second: float | None = None,
        timeout_s: float | None = None,
    ) -> float:
        """Take a slot at host ``key``; return when the call may start (``monotonic``).
        ``max_concurrency`` and ``max_per_second`` lower the host's own limits for this call.
        Raise ``NoSlot`` if none came free within ``timeout_s``."""
        state = self.host(key)
        interval_s = 1.0 / max_per_second if max_per_second else 0.0
        now_s = self._now()
        if (
            not state.waiters
            and state.admits(max_concurrency)
            and state.start_at(interval_s, now_s) <= now_s
        ):
            state.started(now_s)
            return now_s
        waiter = _Waiter(asyncio.get_running_loop().create_future(), max_concurrency, interval_s)
        state.waiters.append(waiter)
        self._pump(state)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter.future
        except TimeoutError:
            self._give_up(state, waiter)
            raise NoSlot(key) from None
        except BaseException:
            self._give_up(state, waiter)
            raise
        return self._now()

    def release(self, key: str, started_s: float, signal: int, path: str = "") -> None:
        """A call that took a slot at ``key`` at ``started_s`` ended, saying ``signal``."""
        state = self._hosts.get(key)
        if state is None:
            return
        state.finished(started_s, self._now(), signal, path)
        self._pump(state)

    def _give_up(self, state: HostState, waiter: _Waiter) -> None:
        if waiter.future.done() and not waiter.future.cancelled():
            # Granted in the same turn as it gave up: hand the slot on.
            state.in_flight -= 1
        else:
            waiter.future.cancel()
        self._pump(state)

    def _pump(self, state: HostState) -> None:
        """Hand free slots to the calls waiting, first come first served."""
        waiters = state.waiters
        while waiters:
            head = waiters[0]
            if head.future.done():  # gave up waiting
                waiters.popleft()
                continue
            if not state.admits(head.max_concurrency):
                return
            now_s = self._now()
            start_s = state.start_at(head.interval_s, now_s)
            if start_s > now_s:
                self._wake_at(state, start_s - now_s)
                return
            waiters.popleft()
            state.started(now_s)
            head.future.set_result(None)

    def _wake_at(self, state: HostState, delay_s: float) -> None:
        if state.timer is not None:
            return

        def wake() -> None:
            state.timer = None
            self._pump(state)

        state.timer = asyncio.get_running_loop().call_later(delay_s, wake)

    def _forget_idle(self) -> None:
        now_s = self._now()
        if now_s - self._swept_s < _IDLE_FORGET_S:
            return
        self._swept_s = now_s
        for key, state in list(self._hosts.items()):
            idle = not state.in_flight and not state.waiters
            if idle and now_s - state.last_used_s > _IDLE_FORGET_S:
                del self._hosts[key]
