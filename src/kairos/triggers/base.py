"""The trigger interface: pure fire-time math, no clock reads and no I/O."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta

from kairos.clock import from_us, to_us

__all__ = ["Trigger"]

# How far back ``latest_at_or_before`` looks for a fire, widening step by step, before it walks
# forward from ``not_before``. Small windows first keep frequent schedules cheap.
_LOOKBACK_WINDOWS = (
    timedelta(seconds=2),
    timedelta(minutes=2),
    timedelta(hours=2),
    timedelta(days=2),
    timedelta(days=64),
    timedelta(days=800),
)


class Trigger(ABC):
    """Computes when a job fires.

    Every datetime in and out is timezone-aware. ``start_date`` / ``end_date`` bounds are the
    trigger's own business: no result is before the start or after the end.
    """

    @abstractmethod
    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after``, or None if the schedule has ended."""

    def next_after_us(self, after_us: int) -> int | None:
        """``next_after`` in epoch microseconds, as the dispatch path works. Triggers whose math
        is elapsed time override it to skip two datetime conversions per fire."""
        nxt = self.next_after(from_us(after_us))
        return None if nxt is None else to_us(nxt)

    def first_fire(self, now: datetime) -> datetime | None:
        """The fire a job freshly created or resumed at ``now`` waits for.

        Recurring triggers give the first fire at or after ``now``; a one-off date trigger whose
        date has passed gives that date (it is then due at once and the misfire policy decides).
        """
        return self.next_after(now - timedelta(microseconds=1))

    def latest_at_or_before(self, now: datetime, not_before: datetime) -> datetime | None:
        """The last fire time in ``[not_before, now]``, or None if there is none.

        Used to coalesce a backlog into one run without walking every missed fire.
        """
        # In UTC: aware datetimes sharing a tzinfo compare by wall clock, ignoring fold.
        now = now.astimezone(UTC)
        floor = not_before.astimezone(UTC) - timedelta(microseconds=1)
        for window in _LOOKBACK_WINDOWS:
            start = max(floor, now - window)
            found = self._last_in(start, now)
            if found is not None or start == floor:
                return found
        return self._last_in(floor, now)

    def _last_in(self, after: datetime, now: datetime) -> datetime | None:
        last = None
        candidate = self.next_after(after)
        while candidate is not None and candidate.astimezone(UTC) <= now:
            last = candidate
            candidate = self.next_after(candidate)
        return last
