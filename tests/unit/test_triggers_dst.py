"""Fire times around DST changes, in several zones, against literal expected times."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kairos import triggers
from kairos.models import CronTriggerSpec


def fires(spec: dict[str, Any], zone: str, after: str, count: int) -> list[str]:
    tz = ZoneInfo(zone)
    trigger = triggers.build(CronTriggerSpec(type="cron", **spec), tz)
    start = datetime.fromisoformat(after).replace(tzinfo=tz)
    return [f.isoformat() for f in triggers.preview(trigger, start, count)]


DAILY_0230 = [{"expression": "30 2 * * *"}, {"hour": "2", "minute": "30"}]
EVERY_30_MIN = [{"expression": "*/30 * * * *"}, {"minute": "*/30"}]


@pytest.mark.parametrize("spec", DAILY_0230)
@pytest.mark.parametrize(
    ("zone", "after", "expected"),
    [
        # Spring forward: 02:30 does not exist, so the fire happens at the jump (03:00).
        (
            "America/New_York",
            "2026-03-07T12:00",
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
        ),
        (
            "Europe/Berlin",
            "2026-03-28T12:00",
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        # Southern hemisphere: clocks go forward in October.
        (
            "Australia/Sydney",
            "2026-10-03T12:00",
            ["2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"],
        ),
        # Fall back: 02:30 happens twice in Berlin; a daily job runs once.
        (
            "Europe/Berlin",
            "2026-10-24T12:00",
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
        # No DST at all.
        (
            "Asia/Kolkata",
            "2026-03-28T12:00",
            ["2026-03-29T02:30:00+05:30", "2026-03-30T02:30:00+05:30"],
        ),
    ],
)
def test_daily_fixed_time_across_dst(
    spec: dict[str, Any], zone: str, after: str, expected: list[str]
) -> None:
    assert fires(spec, zone, after, 2) == expected


@pytest.mark.parametrize("spec", [{"expression": "30 1 * * *"}, {"hour": "1", "minute": "30"}])
def test_fall_back_repeated_time_fires_once(spec: dict[str, Any]) -> None:
    assert fires(spec, "America/New_York", "2026-10-31T12:00", 2) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]


@pytest.mark.parametrize("spec", EVERY_30_MIN)
def test_every_30_minutes_runs_by_real_time_through_fall_back(spec: dict[str, Any]) -> None:
    assert fires(spec, "Europe/London", "2026-10-25T00:10", 5) == [
        "2026-10-25T00:30:00+01:00",
        "2026-10-25T01:00:00+01:00",
        "2026-10-25T01:30:00+01:00",
        "2026-10-25T01:00:00+00:00",
        "2026-10-25T01:30:00+00:00",
    ]


@pytest.mark.parametrize("spec", EVERY_30_MIN)
def test_every_30_minutes_skips_the_missing_hour_in_spring(spec: dict[str, Any]) -> None:
    assert fires(spec, "Europe/London", "2026-03-29T00:10", 3) == [
        "2026-03-29T00:30:00+00:00",
        "2026-03-29T02:00:00+01:00",
        "2026-03-29T02:30:00+01:00",
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"expression": "0 2 * * 0"}, ["2026-11-29T02:00:00+00:00", "2026-12-06T02:00:00+00:00"]),
        ({"expression": "0 2 * * 7"}, ["2026-11-29T02:00:00+00:00", "2026-12-06T02:00:00+00:00"]),
        ({"expression": "0 2 * * sun"}, ["2026-11-29T02:00:00+00:00", "2026-12-06T02:00:00+00:00"]),
        ({"expression": "0 2 * * MON"}, ["2026-11-30T02:00:00+00:00", "2026-12-07T02:00:00+00:00"]),
        # Both day fields restricted: either matches (cron's OR rule).
        ({"expression": "0 0 1 * mon"}, ["2026-11-30T00:00:00+00:00", "2026-12-01T00:00:00+00:00"]),
        (
            {"expression": "0 9 * jan,jul *"},
            ["2027-01-01T09:00:00+00:00", "2027-01-02T09:00:00+00:00"],
        ),
        ({"expression": "@daily"}, ["2026-11-25T00:00:00+00:00", "2026-11-26T00:00:00+00:00"]),
        ({"expression": "@weekly"}, ["2026-11-29T00:00:00+00:00", "2026-12-06T00:00:00+00:00"]),
        (
            {"expression": "15-45/15 * * * *"},
            ["2026-11-24T00:15:00+00:00", "2026-11-24T00:30:00+00:00"],
        ),
        # The keyword form is APScheduler's: 0 = Monday, and day AND day_of_week.
        (
            {"day_of_week": "0", "hour": "2"},
            ["2026-11-30T02:00:00+00:00", "2026-12-07T02:00:00+00:00"],
        ),
        (
            {"day": "1", "day_of_week": "tue"},
            ["2026-12-01T00:00:00+00:00", "2027-06-01T00:00:00+00:00"],
        ),
        ({"day": "last fri"}, ["2026-11-27T00:00:00+00:00", "2026-12-25T00:00:00+00:00"]),
        (
            {"day": "2nd mon", "hour": "9"},
            ["2026-12-14T09:00:00+00:00", "2027-01-11T09:00:00+00:00"],
        ),
        ({"day": "last"}, ["2026-11-30T00:00:00+00:00", "2026-12-31T00:00:00+00:00"]),
        ({"second": "*/20"}, ["2026-11-24T00:00:20+00:00", "2026-11-24T00:00:40+00:00"]),
        ({"year": "2028", "month": "feb", "day": "29"}, ["2028-02-29T00:00:00+00:00"]),
        # 2026 has 53 ISO weeks: week 1 of 2027 starts on 4 January.
        (
            {"week": "1", "day_of_week": "mon"},
            ["2027-01-04T00:00:00+00:00", "2028-01-03T00:00:00+00:00"],
        ),
    ],
)
def test_calendar_meaning(spec: dict[str, Any], expected: list[str]) -> None:
    assert fires(spec, "UTC", "2026-11-24T00:00", 2) == expected
