"""A job's runs drawn on the server as inline SVG (no chart library to ship, and it reads
without scripts): the job page's run chart, and the jobs list's outcome sparkline.

The run chart places each finished run on a time axis (when it started, or was due for a fire
that made no call) by how long its call took, its outcome told by colour and by shape. Marks are
placed in percent of the plot's width and height, so one drawing fits any width, a phone's too,
with round marks and text at its own size."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup

from kairos.clock import from_us, to_us
from kairos.errors import InvalidField
from kairos.models import RunRecord, RunStatus

__all__ = [
    "CHART_RANGES",
    "ChartRange",
    "Mark",
    "OutcomeRow",
    "Outcomes",
    "RunChart",
    "Tick",
    "chart_range",
    "outcomes",
    "run_chart",
]

_S = 1_000_000


@dataclass(frozen=True)
class ChartRange:
    """What the run chart shows: a job's newest runs, or those of a window of time."""

    key: str
    label: str
    window_us: int | None = None
    """None: the newest runs the job page lists, whenever they were."""
    end_step_us: int = _S
    """The window ends at now rounded up to this: polled while nothing happens, the chart is
    drawn the same, so the page leaves it alone."""

    def bounds(self, now_us: int) -> tuple[int, int]:
        """The window's start and end (for a range of time only)."""
        assert self.window_us is not None
        end = -(-now_us // self.end_step_us) * self.end_step_us
        return end - self.window_us, end


CHART_RANGES = (
    ChartRange("50", "Last 50 runs"),
    ChartRange("24h", "24 h", 86_400 * _S, 300 * _S),
    ChartRange("7d", "7 days", 7 * 86_400 * _S, 3_600 * _S),
)


def chart_range(key: str) -> ChartRange:
    """The range named ``key``; ``InvalidField`` on ``chart`` for any other."""
    for chosen in CHART_RANGES:
        if chosen.key == key:
            return chosen
    names = ", ".join(chosen.key for chosen in CHART_RANGES)
    raise InvalidField(["chart"], f"one of {names}", source="query")


_OUTCOMES = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.INTERRUPTED,
    RunStatus.CANCELLED,
    RunStatus.MISSED,
    RunStatus.SKIPPED,
)
"""What the chart draws, in the legend's order: a run still queued or running has no outcome."""


@dataclass(frozen=True)
class Mark:
    """One run on the chart: ``x`` and ``y`` in percent of the plot (``y`` from the top)."""

    run: RunRecord
    at: str
    x: float
    y: float
    duration: str
    """How long the call took, in words; "" for a fire that made no call."""


@dataclass(frozen=True)
class Tick:
    at: float
    label: str
    anchor: str = "middle"


@dataclass(frozen=True)
class OutcomeRow:
    """One outcome's line of the legend and of the chart's table."""

    status: str
    runs: int
    shortest: str
    median: str
    longest: str


@dataclass(frozen=True)
class RunChart:
    range: ChartRange
    marks: list[Mark]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    outcomes: list[OutcomeRow]
    summary: str
    zone: str
    pending: int
    """Runs of the range still queued or running: not drawn."""
    capped: int
    """0, or how many runs were read, the newest of the window, when it holds more."""
    unread: float
    """The percent of the width, on the left, before the oldest run read when ``capped``."""


def run_chart(
    runs: list[RunRecord], chosen: ChartRange, *, now_us: int, zone: ZoneInfo, capped: int = 0
) -> RunChart:
    """``runs`` of one job, in any order, each drawn at ``_at_us``; those outside a window of
    time are left out."""
    done = [run for run in runs if run.status in _OUTCOMES]
    if chosen.window_us is None:
        low, high = _padded([_at_us(run) for run in done])
    else:
        low, high = chosen.bounds(now_us)
        done = [run for run in done if low <= _at_us(run) <= high]
    durations = [_duration_us(run) for run in done]
    top_ms, y_ticks = _y_axis(max((us for us in durations if us is not None), default=0) / 1000)
    span = high - low
    marks = [
        Mark(
            run,
            from_us(_at_us(run)).isoformat(timespec="seconds"),
            100 * (_at_us(run) - low) / span,
            100 - (0 if us is None else 100 * us / 1000 / top_ms),
            "" if us is None else _words(us / 1000),
        )
        for run, us in zip(done, durations, strict=True)
    ]
    oldest = min((_at_us(run) for run in done), default=high)
    return RunChart(
        range=chosen,
        marks=marks,
        x_ticks=_x_axis(low, high, zone),
        y_ticks=y_ticks,
        outcomes=_outcomes(done, durations),
        summary=_summary(done, durations, chosen, zone),
        zone=zone.key,
        pending=len(runs) - len(done) if chosen.window_us is None else 0,
        capped=capped,
        unread=100 * (oldest - low) / span if capped else 0.0,
    )


def _at_us(run: RunRecord) -> int:
    return run.started_us if run.started_us is not None else run.scheduled_for_us


def _duration_us(run: RunRecord) -> int | None:
    if run.started_us is None or run.finished_us is None:
        return None
    return run.finished_us - run.started_us


def _padded(times: list[int]) -> tuple[int, int]:
    """From a little before the first time to a little after the last, so no mark is cut (a
    second at least, so one run alone still has an axis around it)."""
    if not times:
        return 0, 60 * _S
    low, high = min(times), max(times)
    pad = max((high - low) // 30, _S)
    return low - pad, high + pad


_NICE = (1.0, 2.0, 2.5, 5.0)


def _y_axis(longest_ms: float) -> tuple[float, list[Tick]]:
    """The top of the duration axis, a round number at or above ``longest_ms``, and its ticks."""
    rough = max(longest_ms, 1.0) / 4
    scale = 10 ** (len(str(int(rough))) - 1) if rough >= 1 else 1
    step = next((n * scale for n in _NICE if n * scale >= rough), 10 * scale)
    count = max(1, -int(-longest_ms // step))
    top = step * count
    return top, [Tick(100 - 100 * i / count, _words(step * i)) for i in range(1, count + 1)]


def _words(ms: float) -> str:
    """A duration for an axis or a mark: "250 ms", "1.5 s", "2.5 min"."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 120_000:
        return f"{ms / 1000:.3g} s"
    return f"{ms / 60_000:.3g} min"


_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
_DAY_S = 86_400


def _x_axis(low: int, high: int, zone: ZoneInfo) -> list[Tick]:
    """Ticks at round times of the job's zone, about six across."""
    span_s = (high - low) / _S
    step_s = next(
        (s for s in _STEPS_S if span_s / s <= 6), _DAY_S * max(1, round(span_s / 6 / _DAY_S))
    )
    start = from_us(low).astimezone(zone)
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    first = midnight + timedelta(seconds=(start - midnight).total_seconds() // step_s * step_s)
    ticks = []
    for index in range(int(span_s // step_s) + 2):
        when = first + timedelta(seconds=index * step_s)
        x = 100 * (to_us(when) - low) / (high - low)
        if 0 <= x <= 100:
            anchor = "start" if x < 6 else "end" if x > 94 else "middle"
            ticks.append(Tick(x, _tick_label(when, step_s, span_s), anchor))
    return ticks


def _tick_label(when: datetime, step_s: float, span_s: float) -> str:
    if step_s >= _DAY_S:
        return f"{when:%b} {when.day}"
    if step_s < 60:
        return f"{when:%H:%M:%S}"
    return f"{when:%a %H:%M}" if span_s > _DAY_S else f"{when:%H:%M}"


def _outcomes(done: list[RunRecord], durations: list[int | None]) -> list[OutcomeRow]:
    rows: list[OutcomeRow] = []
    for status in _OUTCOMES:
        taken = sorted(
            us
            for run, us in zip(done, durations, strict=True)
            if run.status is status and us is not None
        )
        count = sum(run.status is status for run in done)
        if count and taken:
            shortest, median, longest = (
                _words(us / 1000) for us in (taken[0], statistics.median(taken), taken[-1])
            )
            rows.append(OutcomeRow(status.value, count, shortest, median, longest))
        elif count:
            rows.append(OutcomeRow(status.value, count, "", "", ""))
    return rows


def _summary(
    done: list[RunRecord], durations: list[int | None], chosen: ChartRange, zone: ZoneInfo
) -> str:
    if not done:
        return "No finished runs in this range."
    counts = ", ".join(f"{row.runs} {row.status}" for row in _outcomes(done, durations))
    longest = max((us for us in durations if us is not None), default=None)
    took = "" if longest is None else f"; the longest call took {_words(longest / 1000)}"
    if chosen.window_us is not None:
        return f"{_runs(len(done))} in the last {chosen.label}: {counts}{took}."
    first, last = (from_us(f(_at_us(run) for run in done)).astimezone(zone) for f in (min, max))
    return (
        f"The last {_runs(len(done), 'finished run')}, from {first:%Y-%m-%d %H:%M} to "
        f"{last:%Y-%m-%d %H:%M} ({zone.key}): {counts}{took}."
    )


def _runs(count: int, noun: str = "run") -> str:
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


_DECIDED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INTERRUPTED})
"""The outcomes a success rate counts: a call made that worked or did not. Missed, skipped and
cancelled fires made no call, and a run still going has no outcome yet."""
_SPARK_BAR = 4
_SPARK_HEIGHT = 16


@dataclass(frozen=True)
class Outcomes:
    """What the jobs list says of a job's runs: its newest run, its success rate over the
    history kept, and a sparkline of its newest calls."""

    last: RunRecord | None
    succeeded: int
    """Calls that succeeded, over the job's kept history."""
    decided: int
    """Calls that ended (succeeded, failed or interrupted), over the job's kept history."""
    sparkline: Markup

    @property
    def rate(self) -> str:
        """ "92%", or "" when no call has an outcome yet."""
        return f"{100 * self.succeeded // self.decided}%" if self.decided else ""


def outcomes(runs: list[RunRecord], kept: Mapping[RunStatus, int]) -> Outcomes:
    """``runs`` newest first and ``kept``, the job's ended runs by status over its kept history:
    the last run, the success rate over that history, and a sparkline of the newest runs
    (oldest on the left, one tick per call: tall and green if it succeeded, short and red if
    it failed)."""
    decided = [run for run in runs if run.status in _DECIDED]
    calls = sum(kept.get(status, 0) for status in _DECIDED)
    succeeded = kept.get(RunStatus.SUCCEEDED, 0)
    return Outcomes(runs[0] if runs else None, succeeded, calls, _sparkline(decided))


def _sparkline(decided: list[RunRecord]) -> Markup:
    if not decided:
        return Markup("")
    ticks = []
    for index, run in enumerate(reversed(decided)):
        good = run.status is RunStatus.SUCCEEDED
        height = _SPARK_HEIGHT if good else _SPARK_HEIGHT / 2
        ticks.append(
            f'<rect class="bar {run.status.value}" x="{index * _SPARK_BAR}" '
            f'y="{_SPARK_HEIGHT - height:g}" width="{_SPARK_BAR - 1}" height="{height:g}"/>'
        )
    width = _SPARK_BAR * len(decided)
    succeeded = sum(run.status is RunStatus.SUCCEEDED for run in decided)
    summary = f"{succeeded} of the last {len(decided)} calls succeeded"
    return Markup(
        f'<svg class="spark" width="{width}" height="{_SPARK_HEIGHT}" '
        f'viewBox="0 0 {width} {_SPARK_HEIGHT}" role="img" aria-label="{summary}">'
        f"<title>{summary}</title>{''.join(ticks)}</svg>"
    )
