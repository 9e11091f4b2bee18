"""Crontab days counted within the month (``L``, ``LW``, ``5L``, ``5#3``): literal fire times,
the same days found by brute force over six years forward and backward, and the forms refused."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from kairos.errors import InvalidField
from kairos.triggers.cron import CrontabTrigger

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "fires"),
    [
        ("0 9 L * *", ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]),
        ("0 9 LW * *", ["2026-01-30", "2026-02-27", "2026-03-31", "2026-04-30"]),
        ("0 9 * * 5L", ["2026-01-30", "2026-02-27", "2026-03-27", "2026-04-24"]),
        ("0 9 * * 5#3", ["2026-01-16", "2026-02-20", "2026-03-20", "2026-04-17"]),
        ("0 9 * * fri#3", ["2026-01-16", "2026-02-20", "2026-03-20", "2026-04-17"]),
        ("0 9 * * 0#5", ["2026-03-29", "2026-05-31", "2026-08-30", "2026-11-29"]),
        # Both day fields restricted: either matching is enough (cron's OR rule).
        ("0 9 L * 1#1", ["2026-01-05", "2026-01-31", "2026-02-02", "2026-02-28"]),
    ],
)
def test_days_within_the_month_fire_on_those_days(expression: str, fires: list[str]) -> None:
    trigger = CrontabTrigger(expression, ZoneInfo("UTC"))
    found, current = [], START
    for _ in fires:
        nxt = trigger.next_after(current)
        assert nxt is not None
        found.append(nxt.isoformat())
        current = nxt
    assert found == [f"{day}T09:00:00+00:00" for day in fires]


def _matches(day_field: str, weekday_field: str, day: date) -> bool:
    """Cron's meaning of the two day fields, written out independently of cronsim."""
    last = calendar.monthrange(day.year, day.month)[1]
    last_weekday = max(
        d for d in range(last - 2, last + 1) if date(day.year, day.month, d).weekday() < 5
    )
    weekday = (day.weekday() + 1) % 7  # cron counts from Sunday = 0

    def month_day(item: str) -> bool:
        return {"L": day.day == last, "LW": day.day == last_weekday}.get(item, str(day.day) == item)

    def week_day(item: str) -> bool:
        if item.endswith("L"):
            return weekday == int(item[:-1]) % 7 and day.day + 7 > last
        number, _, nth = item.partition("#")
        return weekday == int(number) % 7 and (not nth or (day.day - 1) // 7 + 1 == int(nth))

    on_day = day_field == "*" or any(month_day(i) for i in day_field.split(","))
    on_weekday = weekday_field == "*" or any(week_day(i) for i in weekday_field.split(","))
    if "*" in (day_field, weekday_field):
        return on_day and on_weekday
    return on_day or on_weekday


@pytest.mark.parametrize(
    ("day_field", "weekday_field"),
    [
        ("L", "*"),
        ("LW", "*"),
        ("*", "7L"),
        ("*", "1#1,5L"),
        ("1,L", "*"),
        ("LW", "0#1"),
        ("15", "1L"),
    ],
)
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_every_fire_over_six_years_is_a_day_cron_means(
    day_field: str, weekday_field: str, zone: str
) -> None:
    tz = ZoneInfo(zone)
    trigger = CrontabTrigger(f"0 9 {day_field} * {weekday_field}", tz)
    fires: list[datetime] = []
    current = trigger.next_after(START)
    while current is not None and current.year < 2032:
        fires.append(current)
        current = trigger.next_after(current)
    days = [START.date() + timedelta(days=n) for n in range((date(2032, 1, 1) - START.date()).days)]
    expected = [d for d in days if _matches(day_field, weekday_field, d)]
    assert [fire.date() for fire in fires] == expected
    # Coalescing a backlog walks backwards: it finds the same fires.
    for fire in fires[::5]:
        assert fire.time() == time(9)
        found = trigger.latest_at_or_before(fire + timedelta(hours=1), fire - timedelta(days=40))
        assert found == fire


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 0 L/2 * *", "'L/2'"),
        ("0 0 1-L * *", "'1-L'"),
        ("0 0 * * L", "'L'"),
        ("0 0 * * FRIL", "'FRIL'"),
        ("0 0 * * 5#6", "'5#6'"),
        ("0 0 * * 1-5#2", "'1-5#2'"),
        ("0 0 15W * *", "day-of-month"),
    ],
)
def test_other_forms_of_last_and_nth_are_refused_naming_them(expression: str, words: str) -> None:
    with pytest.raises(InvalidField) as caught:
        CrontabTrigger(expression, ZoneInfo("UTC"))
    assert caught.value.loc == ("trigger", "expression")
    assert words in caught.value.message
