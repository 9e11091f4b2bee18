"""Slowing down password guessing: after a few failed sign-ins for one user name or from one
client address, each further attempt for it must wait, twice as long after every failure.

Kept in memory: each replica counts the attempts it sees (a guesser spread over N replicas gets
N times the attempts, still exponentially slowed). Bounded, so a flood of names cannot grow it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["LoginThrottle"]

_MAX_TRACKED = 100_000


@dataclass(slots=True)
class _Failures:
    count: int
    last_s: float


class LoginThrottle:
    def __init__(
        self,
        *,
        free_attempts: int = 5,
        first_delay_s: float = 1.0,
        max_delay_s: float = 300.0,
        forget_after_s: float = 900.0,
    ) -> None:
        self._free = free_attempts
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s
        self._forget_after_s = forget_after_s
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def wait_s(self, keys: tuple[str, ...], now_s: float) -> float:
        """How long until an attempt for all of ``keys`` may be tried (0: now)."""
        return max((self._wait_one(key, now_s) for key in keys), default=0.0)

    def failed(self, keys: tuple[str, ...], now_s: float) -> int:
        """Count a failure for each key; return the highest count among them."""
        highest = 0
        for key in keys:
            entry = self._live(key, now_s)
            if entry is None:
                entry = self._failures[key] = _Failures(0, now_s)
            entry.count += 1
            entry.last_s = now_s
            self._failures.move_to_end(key)
            highest = max(highest, entry.count)
        while len(self._failures) > _MAX_TRACKED:
            self._failures.popitem(last=False)
        return highest

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def _wait_one(self, key: str, now_s: float) -> float:
        entry = self._live(key, now_s)
        if entry is None or entry.count < self._free:
            return 0.0
        delay = min(self._max_delay_s, self._first_delay_s * 2.0 ** (entry.count - self._free))
        return max(0.0, entry.last_s + delay - now_s)

    def _live(self, key: str, now_s: float) -> _Failures | None:
        entry = self._failures.get(key)
        if entry is not None and now_s - entry.last_s > self._forget_after_s:
            del self._failures[key]
            return None
        return entry
