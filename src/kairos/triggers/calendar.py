"""APScheduler-style keyword cron: ``year, month, day, week, day_of_week, hour, minute, second``.

The meaning is APScheduler 3's: every given field must match (day and day_of_week AND together,
unlike crontab), fields after the last given one default to their minimum (``hour=2`` means
02:00:00) and fields before it to ``*``. ``day_of_week`` counts 0 = Monday .. 6 = Sunday (as
APScheduler does, unlike crontab); names ``mon``..``sun`` avoid the confusion. ``day`` also takes
``last``, ``last fri`` and ``2nd fri``; ``week`` is the ISO week number.

DST, as in the crontab form: if hour and minute are both fixed the schedule is wall-clock (a time
skipped by spring-forward fires at the jump, a repeated time fires once); otherwise it runs by real
time (every matching instant, so both passes of a repeated hour and none of a skipped one).
"""

from __future__ import annotations

import bisect
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kairos.errors import InvalidField
from kairos.triggers.base import Trigger
from kairos.triggers.calendar_fields import parse_day, parse_values

__all__ = ["CalendarTrigger"]

_ORDER = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
_DEFAULTS = {"month": "1", "day": "1", "hour": "0", "minute": "0", "second": "0"}
_SECOND = timedelta(seconds=1)
# Around a DST change, candidates this far either side are compared by real time.
_DST_WINDOW = timedelta(hours=3)
_HORIZON_YEARS = 100


class CalendarTrigger(Trigger):
    def __init__(self, fields: dict[str, str | int], zone: ZoneInfo) -> None:
        self.zone = zone
        exprs = _with_defaults({k: str(v) for k, v in fields.items()})
        self.years = parse_values("year", exprs["year"])
        self.months = parse_values("month", exprs["month"])
        self.days, self.day_rules = parse_day(exprs["day"])
        self.weeks = set(parse_values("week", exprs["week"]))
        self.weekdays = set(parse_values("day_of_week", exprs["day_of_week"]))
        self.hours = parse_values("hour", exprs["hour"])
        self.minutes = parse_values("minute", exprs["minute"])
        self.seconds = parse_values("second", exprs["second"])
        self._day_set = set(self.days)
        self.wall_clock = not exprs["hour"].startswith("*") and not exprs["minute"].startswith("*")
        if self._naive_after(datetime(1969, 12, 31, 23, 59, 59)) is None:
            raise InvalidField(("trigger",), "these fields never match any date")

    def next_after(self, after: datetime) -> datetime | None:
        local = after.astimezone(self.zone).replace(tzinfo=None)
        candidate = self._naive_after(local)
        if candidate is None:
            return None
        fire = candidate.replace(tzinfo=self.zone)
        if not _odd(local.replace(tzinfo=self.zone)) and not _odd(fire):
            return fire
        return self._near_dst_change(after, local)

    def _near_dst_change(self, after: datetime, local: datetime) -> datetime | None:
        """Compare candidates by real time, since wall-clock order breaks around a DST change."""
        # Compared in UTC: aware datetimes sharing a tzinfo compare by wall clock, ignoring fold.
        after_utc = after.astimezone(UTC)
        best: datetime | None = None
        candidate = self._naive_after(local - _DST_WINDOW)
        while candidate is not None:
            if best is not None and candidate > best.replace(tzinfo=None) + _DST_WINDOW:
                break
            for fire in self._instants(candidate):
                fire_utc = fire.astimezone(UTC)
                if fire_utc > after_utc and (best is None or fire_utc < best.astimezone(UTC)):
                    best = fire
            if best is not None and self.wall_clock:
                break
            candidate = self._naive_after(candidate)
        return best

    def _instants(self, naive: datetime) -> list[datetime]:
        first = naive.replace(tzinfo=self.zone, fold=0)
        if _imaginary(first):
            return [_jump_after(first, self.zone)] if self.wall_clock else []
        second = naive.replace(tzinfo=self.zone, fold=1)
        if self.wall_clock or first.utcoffset() == second.utcoffset():
            return [first]
        return [first, second]

    # Wall-clock search ---------------------------------------------------------------------

    def _naive_after(self, moment: datetime) -> datetime | None:
        """The first wall-clock time strictly after ``moment`` that matches every field."""
        start = moment.replace(microsecond=0) + _SECOND
        last_year = start.year + _HORIZON_YEARS
        for year in self.years[bisect.bisect_left(self.years, start.year) :]:
            if year > last_year:
                return None
            first_month = start.month if year == start.year else 1
            for month in self.months[bisect.bisect_left(self.months, first_month) :]:
                found = self._in_month(year, month, start)
                if found is not None:
                    return found
        return None

    def _in_month(self, year: int, month: int, start: datetime) -> datetime | None:
        same_month = (year, month) == (start.year, start.month)
        first_day = start.day if same_month else 1
        day = date(year, month, first_day)
        while day.month == month:
            if self._day_matches(day):
                floor = start.time() if day == start.date() else time()
                clock = self._time_at_or_after(floor)
                if clock is not None:
                    return datetime.combine(day, clock)
            day += timedelta(days=1)
        return None

    def _day_matches(self, day: date) -> bool:
        if day.weekday() not in self.weekdays or day.isocalendar()[1] not in self.weeks:
            return False
        return day.day in self._day_set or any(rule(day) for rule in self.day_rules)

    def _time_at_or_after(self, floor: time) -> time | None:
        for hour in self.hours[bisect.bisect_left(self.hours, floor.hour) :]:
            min_floor = floor.minute if hour == floor.hour else 0
            for minute in self.minutes[bisect.bisect_left(self.minutes, min_floor) :]:
                sec_floor = floor.second if (hour, minute) == (floor.hour, floor.minute) else 0
                index = bisect.bisect_left(self.seconds, sec_floor)
                if index < len(self.seconds):
                    return time(hour, minute, self.seconds[index])
        return None


def _with_defaults(given: dict[str, str]) -> dict[str, str]:
    last_given = max(_ORDER.index(name) for name in given)
    return {
        name: given.get(name, _DEFAULTS.get(name, "*") if i > last_given else "*")
        for i, name in enumerate(_ORDER)
    }


def _imaginary(moment: datetime) -> bool:
    """True for a wall-clock time that a spring-forward skips."""
    back = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return back.replace(tzinfo=None) != moment.replace(tzinfo=None)


def _odd(moment: datetime) -> bool:
    """True for a skipped or repeated wall-clock time, where wall-clock order misleads."""
    return _imaginary(moment) or moment.utcoffset() != moment.replace(fold=1).utcoffset()


def _jump_after(moment: datetime, zone: ZoneInfo) -> datetime:
    """The first real instant after the gap that swallowed ``moment`` (cron fires there)."""
    probe = moment.replace(second=0)
    while _imaginary(probe):
        probe = (probe.replace(tzinfo=None) + timedelta(minutes=1)).replace(tzinfo=zone)
    return probe
