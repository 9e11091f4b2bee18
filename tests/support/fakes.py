"""Stand-ins for the engine's unit tests: a clock moved by hand, an executor in memory, and a
wait on a condition with a deadline."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from datetime import datetime

from kairos.clock import to_us
from kairos.executors.base import Call, Outcome

WAIT_S = 5.0
"""How long a condition may take to hold before the test fails."""


class FakeClock:
    """A ``Clock`` that stands still until ``advance`` moves it."""

    def __init__(self, start: datetime) -> None:
        self._now_us = to_us(start)

    def now_us(self) -> int:
        return self._now_us

    def monotonic(self) -> float:
        """The same time in seconds, for parts that age things by a monotonic clock."""
        return self._now_us / 1_000_000

    def advance(self, seconds: float) -> None:
        self._now_us += round(seconds * 1_000_000)


class FakeExecutor:
    """An ``Executor`` that records each ``Call`` and answers the scripted outcomes in order
    (success once they run out). While ``gate`` is set to an unset event, calls wait on it:
    they stay in flight until the test sets it."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.calls: list[Call] = []
        self.cancelled: list[Call] = []
        self.in_flight = 0
        self.peak = 0
        """The most calls that were in flight at once."""
        self.gate: asyncio.Event | None = None
        self._outcomes = list(outcomes)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def execute(self, call: Call) -> Outcome:
        self.calls.append(call)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(call)
            raise
        finally:
            self.in_flight -= 1
        return self._outcomes.pop(0) if self._outcomes else Outcome(True, code=200)


async def eventually(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Wait until ``condition`` holds, looking again each millisecond; fail, saying ``what``
    was awaited, if it does not within ``WAIT_S``."""
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                held = condition()
                if inspect.isawaitable(held):
                    held = await held
                if held:
                    return
                await asyncio.sleep(0.001)
    except TimeoutError:
        raise AssertionError(f"still waiting after {WAIT_S:g} s for {what}") from None
