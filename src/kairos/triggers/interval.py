"""Fixed intervals of elapsed time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from kairos.clock import from_us, to_us
from kairos.triggers.base import Trigger

__all__ = ["IntervalTrigger"]


class IntervalTrigger(Trigger):
    """Fires at ``start + k * interval`` for k = 0, 1, 2, ... in elapsed (UTC) time.

    An interval is a duration, so "every 2 hours" stays 2 hours apart across DST changes. Without
    a ``start_date`` the fires are aligned to the Unix epoch: every node computes the same fires
    without a clock, and replacing the job keeps its phase. Integer microseconds: no float drift.
    """

    def __init__(
        self,
        interval_us: int,
        zone: ZoneInfo,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        self.interval_us = interval_us
        self.zone = zone
        self.anchor_us = 0 if start is None else to_us(start)
        self.start_us = None if start is None else self.anchor_us
        self.end_us = None if end is None else to_us(end)

    def next_after(self, after: datetime) -> datetime | None:
        fire_us = self.next_after_us(to_us(after))
        return None if fire_us is None else from_us(fire_us).astimezone(self.zone)

    def next_after_us(self, after_us: int) -> int | None:
        if after_us < self.anchor_us:
            fire_us = self.anchor_us
        else:
            elapsed = after_us - self.anchor_us
            fire_us = self.anchor_us + (elapsed // self.interval_us + 1) * self.interval_us
        if self.end_us is not None and fire_us > self.end_us:
            return None
        return fire_us

    def latest_at_or_before(self, now: datetime, not_before: datetime) -> datetime | None:
        limit_us = to_us(now)
        if self.end_us is not None:
            limit_us = min(limit_us, self.end_us)
        if limit_us < self.anchor_us:
            return None
        fire_us = self.anchor_us + (limit_us - self.anchor_us) // self.interval_us * (
            self.interval_us
        )
        if fire_us < to_us(not_before):
            return None
        return from_us(fire_us).astimezone(self.zone)
