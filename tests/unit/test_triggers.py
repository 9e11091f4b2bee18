"""Trigger construction, validation and the interval, date and bound rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter

from kairos import triggers
from kairos.errors import InvalidField
from kairos.models import TriggerSpec

SPEC: TypeAdapter[Any] = TypeAdapter(TriggerSpec)
BERLIN = ZoneInfo("Europe/Berlin")


def build(zone: ZoneInfo = UTC, **spec: Any) -> triggers.Trigger:  # type: ignore[assignment]
    return triggers.build(SPEC.validate_python(spec), zone)


@pytest.mark.parametrize(
    ("spec", "loc", "words"),
    [
        ({"type": "cron", "expression": "61 * * * *"}, ("trigger", "expression"), "minute"),
        ({"type": "cron", "expression": "* * * *"}, ("trigger", "expression"), "5 fields"),
        ({"type": "cron", "expression": "* * * * * *"}, ("trigger", "expression"), "5 fields"),
        ({"type": "cron", "expression": "a b c d e"}, ("trigger", "expression"), "Bad"),
        ({"type": "cron", "expression": "0 0 31 2 *"}, ("trigger", "expression"), ""),
        ({"type": "cron", "expression": "@fortnightly"}, ("trigger", "expression"), "5 fields"),
        ({"type": "cron", "hour": "24"}, ("trigger", "hour"), "out of range 0-23"),
        ({"type": "cron", "minute": "5-1"}, ("trigger", "minute"), "backwards"),
        ({"type": "cron", "day_of_week": "funday"}, ("trigger", "day_of_week"), "known name"),
        ({"type": "cron", "second": "*/0"}, ("trigger", "second"), "step"),
        ({"type": "cron", "month": "2", "day": "30"}, ("trigger",), "never"),
        ({"type": "cron", "day": "6th fri"}, ("trigger", "day"), "6th fri"),
        (
            {
                "type": "interval",
                "seconds": 5,
                "start_date": "2026-02-01T00:00:00",
                "end_date": "2026-01-01T00:00:00",
            },
            ("trigger", "end_date"),
            "before start_date",
        ),
    ],
)
def test_bad_triggers_name_the_field(
    spec: dict[str, Any], loc: tuple[str, ...], words: str
) -> None:
    with pytest.raises(InvalidField) as caught:
        build(**spec)
    assert caught.value.loc == loc
    assert words in caught.value.message


def test_interval_fires_are_aligned_to_the_epoch_without_a_start() -> None:
    trigger = build(type="interval", minutes=15)
    after = datetime(2026, 11, 24, 10, 7, 30, tzinfo=UTC)
    assert triggers.preview(trigger, after, 2) == [
        datetime(2026, 11, 24, 10, 15, tzinfo=UTC),
        datetime(2026, 11, 24, 10, 30, tzinfo=UTC),
    ]


def test_interval_is_elapsed_time_across_dst() -> None:
    trigger = build(BERLIN, type="interval", hours=1, start_date="2026-03-29T01:00:00")
    fires = triggers.preview(trigger, datetime(2026, 3, 28, 23, 0, tzinfo=UTC), 3)
    assert [f.isoformat() for f in fires] == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]


def test_sub_second_interval_has_no_drift() -> None:
    trigger = build(type="interval", seconds=0.1, start_date="2026-01-01T00:00:00Z")
    fires = triggers.preview(trigger, datetime(2026, 1, 1, tzinfo=UTC), 1000)
    assert fires[-1] == datetime(2026, 1, 1, 0, 1, 40, tzinfo=UTC)
    assert {b - a for a, b in pairwise(fires)} == {timedelta(milliseconds=100)}


def test_interval_respects_start_and_end() -> None:
    trigger = build(
        type="interval",
        seconds=10,
        start_date="2026-01-01T00:00:05Z",
        end_date="2026-01-01T00:00:30Z",
    )
    fires = triggers.preview(trigger, datetime(2025, 1, 1, tzinfo=UTC), 10)
    assert [f.second for f in fires] == [5, 15, 25]


@pytest.mark.parametrize("seconds", [7, 60, 3600])
def test_interval_latest_matches_the_generic_walk(seconds: int) -> None:
    trigger = build(type="interval", seconds=seconds, start_date="2026-01-01T00:00:03Z")
    now = datetime(2026, 1, 1, 5, 17, 41, 500, tzinfo=UTC)
    floor = datetime(2026, 1, 1, 1, tzinfo=UTC)
    generic = triggers.Trigger.latest_at_or_before(trigger, now, floor)
    assert trigger.latest_at_or_before(now, floor) == generic


def test_cron_latest_at_or_before_finds_the_last_fire() -> None:
    trigger = build(BERLIN, type="cron", expression="0 2 * * *")
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    floor = datetime(2026, 11, 1, tzinfo=UTC)
    assert trigger.latest_at_or_before(now, floor) == datetime(2026, 11, 24, 1, tzinfo=UTC)
    assert trigger.latest_at_or_before(now, now - timedelta(hours=1)) is None


def test_cron_bounds_apply() -> None:
    trigger = build(
        BERLIN,
        type="cron",
        expression="0 12 * * *",
        start_date="2026-12-01T00:00:00",
        end_date="2026-12-03T00:00:00",
    )
    fires = triggers.preview(trigger, datetime(2026, 11, 1, tzinfo=UTC), 10)
    assert [f.isoformat() for f in fires] == [
        "2026-12-01T12:00:00+01:00",
        "2026-12-02T12:00:00+01:00",
    ]


def test_date_trigger_fires_once_in_the_job_zone() -> None:
    trigger = build(BERLIN, type="date", run_date="2026-12-24T18:00:00")
    first = trigger.first_fire(datetime(2027, 1, 1, tzinfo=UTC))
    assert first is not None
    assert first.isoformat() == "2026-12-24T18:00:00+01:00"
    assert trigger.next_after(first) is None


def test_naive_time_skipped_by_dst_is_moved_past_the_jump() -> None:
    moment = triggers.localize(datetime(2026, 3, 29, 2, 30), BERLIN)
    assert moment.isoformat() == "2026-03-29T03:30:00+02:00"


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "interval", "seconds": 7, "start_date": "2026-01-01T00:00:03Z"},
        {"type": "interval", "seconds": 0.25, "end_date": "2026-01-01T00:10:00Z"},
        {"type": "interval", "hours": 1},
        {"type": "date", "run_date": "2026-01-01T00:05:00.000001Z"},
    ],
)
def test_microsecond_fast_path_agrees_with_the_datetime_one(spec: dict[str, Any]) -> None:
    trigger = build(BERLIN, **spec)
    generic = triggers.Trigger.next_after_us
    start = datetime(2025, 12, 31, 23, 59, tzinfo=UTC)
    for step in range(0, 20 * 60 * 1_000_000, 999_983):
        after_us = int(start.timestamp() * 1_000_000) + step
        assert trigger.next_after_us(after_us) == generic(trigger, after_us), after_us
