"""The run chart's arithmetic on literal times: where runs are placed, the round times and
durations its axes are marked at (in the job's zone, across a DST change), and the windows."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from kairos.clock import to_us
from kairos.errors import InvalidField
from kairos.models import RunRecord, RunStatus
from kairos.web.chart import chart_range, run_chart

S = 1_000_000
UTC = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")


def at(text: str, zone: ZoneInfo = UTC) -> int:
    return to_us(datetime.fromisoformat(text).replace(tzinfo=zone))


def done(run_id: int, start_us: int, ms: int | None, status: RunStatus) -> RunRecord:
    started = None if ms is None else start_us
    finished = start_us + (ms or 0) * 1000
    return RunRecord(run_id, "j", start_us, 1, status, started_us=started, finished_us=finished)


def test_the_newest_runs_are_placed_by_start_and_duration_on_round_axes() -> None:
    t0 = at("2026-03-01T10:00:00")
    runs = [
        done(3, t0 + 3600 * S, 150, RunStatus.FAILED),
        done(2, t0 + S, 800, RunStatus.SUCCEEDED),
        done(1, t0, 200, RunStatus.SUCCEEDED),
        RunRecord(4, "j", t0 + 7200 * S, 1, RunStatus.RUNNING, started_us=t0 + 7200 * S),
    ]
    chart = run_chart(runs, chart_range("50"), now_us=t0 + 7200 * S, zone=UTC)
    marks = {mark.run.id: mark for mark in chart.marks}
    assert set(marks) == {1, 2, 3}
    assert chart.pending == 1
    assert marks[2].x - marks[1].x == pytest.approx(100 / 3840, rel=1e-6)  # 1 s of 64 min
    assert marks[3].x - marks[1].x == pytest.approx(100 * 3600 / 3840)
    assert [tick.label for tick in chart.y_ticks] == ["200 ms", "400 ms", "600 ms", "800 ms"]
    assert marks[2].y == 0
    assert marks[1].y == 75
    assert marks[3].duration == "150 ms"
    assert [tick.label for tick in chart.x_ticks] == ["10:00", "10:15", "10:30", "10:45", "11:00"]
    assert [(row.status, row.runs, row.median) for row in chart.outcomes] == [
        ("succeeded", 2, "500 ms"),
        ("failed", 1, "150 ms"),
    ]


def test_a_window_ends_at_now_rounded_up_and_marks_days_in_the_jobs_zone() -> None:
    now = at("2026-03-30T09:58:00", PARIS)  # the day after clocks went forward
    runs = [
        done(2, now - 3600 * S, None, RunStatus.MISSED),
        done(1, now - 8 * 86_400 * S, 10, RunStatus.SUCCEEDED),  # before the window
    ]
    chart = run_chart(runs, chart_range("7d"), now_us=now, zone=PARIS)
    assert [mark.run.id for mark in chart.marks] == [2]
    assert chart.marks[0].y == 100  # no call: on the baseline
    labels = [tick.label for tick in chart.x_ticks]
    assert labels == ["Mar 24", "Mar 25", "Mar 26", "Mar 27", "Mar 28", "Mar 29", "Mar 30"]
    window = chart_range("24h")
    assert window.bounds(now)[1] == at("2026-03-30T10:00:00", PARIS)


def test_an_unknown_range_is_named() -> None:
    with pytest.raises(InvalidField) as raised:
        chart_range("1y")
    assert str(raised.value) == "chart: one of 50, 24h, 7d"
