"""``start_date`` / ``end_date`` around any trigger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kairos.triggers.base import Trigger

__all__ = ["Bounded"]

_TICK = timedelta(microseconds=1)


class Bounded(Trigger):
    """No fire before ``start`` or after ``end`` of the wrapped trigger.

    Bounds are kept in UTC: aware datetimes sharing a tzinfo compare by wall clock, ignoring fold.
    """

    def __init__(self, inner: Trigger, start: datetime | None, end: datetime | None) -> None:
        self.inner = inner
        self.start = None if start is None else start.astimezone(UTC)
        self.end = None if end is None else end.astimezone(UTC)

    def next_after(self, after: datetime) -> datetime | None:
        after = after.astimezone(UTC)
        if self.start is not None and after < self.start:
            after = self.start - _TICK
        fire = self.inner.next_after(after)
        if fire is None or (self.end is not None and fire > self.end):
            return None
        return fire

    def latest_at_or_before(self, now: datetime, not_before: datetime) -> datetime | None:
        now, not_before = now.astimezone(UTC), not_before.astimezone(UTC)
        if self.end is not None and now > self.end:
            now = self.end
        if self.start is not None and not_before < self.start:
            not_before = self.start
        if now < not_before:
            return None
        return self.inner.latest_at_or_before(now, not_before)
