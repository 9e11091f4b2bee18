"""Time, injected: the engine reads the clock only through a ``Clock`` so tests can control it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "SystemClock", "from_us", "to_us"]


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch, UTC."""
        ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000


def to_us(dt: datetime) -> int:
    """Epoch microseconds of an aware datetime, exactly (no float rounding)."""
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
