"""Fire-time math: ``build(spec, zone)`` turns a stored trigger spec into a ``Trigger``.

Pure functions of their inputs: no clock reads and no I/O, so every result is reproducible.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from kairos.errors import InvalidField
from kairos.models import (
    CRON_FIELDS,
    LAST_YEAR,
    CronTriggerSpec,
    DateTriggerSpec,
    IntervalTriggerSpec,
    TriggerSpec,
)
from kairos.triggers.base import Trigger
from kairos.triggers.bounds import Bounded
from kairos.triggers.calendar import CalendarTrigger
from kairos.triggers.cron import CrontabTrigger
from kairos.triggers.date import DateTrigger
from kairos.triggers.interval import IntervalTrigger

__all__ = ["Trigger", "build", "localize", "preview"]


def build(spec: TriggerSpec, zone: ZoneInfo) -> Trigger:
    """The trigger a spec describes, read in ``zone``. Raise ``InvalidField`` naming the field
    of the job body that makes no sense."""
    if isinstance(spec, DateTriggerSpec):
        return DateTrigger(localize(spec.run_date, zone))
    start = None if spec.start_date is None else localize(spec.start_date, zone)
    end = None if spec.end_date is None else localize(spec.end_date, zone)
    if start is not None and end is not None and end < start:
        raise InvalidField(("trigger", "end_date"), "end_date is before start_date")
    if isinstance(spec, IntervalTriggerSpec):
        interval_us = round(spec.total_seconds * 1_000_000)
        return IntervalTrigger(interval_us, zone, start, end)
    inner = _cron(spec, zone)
    return inner if start is None and end is None else Bounded(inner, start, end)


def preview(trigger: Trigger, after: datetime, count: int) -> list[datetime]:
    """Up to ``count`` fire times strictly after ``after``, none past the year ``LAST_YEAR``
    (the last a trigger's dates may name): a long interval would soon pass the year 9999,
    beyond which no date can be represented."""
    fires: list[datetime] = []
    current = after
    while len(fires) < count:
        nxt = trigger.next_after(current)
        if nxt is None or nxt.year > LAST_YEAR:
            break
        fires.append(nxt)
        current = nxt
    return fires


def localize(moment: datetime, zone: ZoneInfo) -> datetime:
    """An aware datetime: naive values are wall-clock times in ``zone``. A wall-clock time that
    a DST jump skips is moved past the jump; an ambiguous one takes its first occurrence."""
    if moment.tzinfo is not None:
        return moment
    aware = moment.replace(tzinfo=zone, fold=0)
    return aware.astimezone(ZoneInfo("UTC")).astimezone(zone)


def _cron(spec: CronTriggerSpec, zone: ZoneInfo) -> Trigger:
    if spec.expression is not None:
        return CrontabTrigger(spec.expression, zone)
    fields = {name: getattr(spec, name) for name in CRON_FIELDS if getattr(spec, name) is not None}
    return CalendarTrigger(fields, zone)
