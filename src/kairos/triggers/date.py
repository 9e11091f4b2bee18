"""One-off fires."""

from __future__ import annotations

from datetime import UTC, datetime

from kairos.clock import to_us
from kairos.triggers.base import Trigger

__all__ = ["DateTrigger"]


class DateTrigger(Trigger):
    """Fires once, at ``run_date``."""

    def __init__(self, run_date: datetime) -> None:
        self.run_date = run_date
        self.run_us = to_us(run_date)

    def next_after(self, after: datetime) -> datetime | None:
        # Compared in UTC: aware datetimes sharing a tzinfo compare by wall clock, ignoring fold.
        return self.run_date if self.run_date.astimezone(UTC) > after.astimezone(UTC) else None

    def next_after_us(self, after_us: int) -> int | None:
        return self.run_us if self.run_us > after_us else None

    def first_fire(self, now: datetime) -> datetime | None:
        return self.run_date
