"""A job's recent runs drawn on the server as inline SVG (no chart library to ship, and it reads
without scripts): the job page's bar chart (one bar per run, oldest on the left, its height the
call's duration and its colour the outcome), and the jobs list's outcome sparkline."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from kairos.clock import from_us
from kairos.models import RunRecord, RunStatus

__all__ = ["Outcomes", "outcomes", "runs_chart"]

_WIDTH = 640
_HEIGHT = 120
_GAP = 2


def runs_chart(runs: list[RunRecord]) -> Markup:
    """``runs`` newest first, as the history lists them."""
    shown = [run for run in reversed(runs) if run.finished_us is not None]
    if not shown:
        return Markup("")
    durations = [_duration_ms(run) for run in shown]
    tallest = max(durations) or 1.0
    bar = max(2.0, (_WIDTH - _GAP * len(shown)) / len(shown))
    bars = []
    for index, (run, ms) in enumerate(zip(shown, durations, strict=True)):
        height = max(2.0, (_HEIGHT - 14) * ms / tallest)
        x = index * (bar + _GAP)
        when = from_us(run.scheduled_for_us).isoformat(timespec="seconds")
        label = f"run {run.id}: {run.status.value}, {ms:.0f} ms, scheduled for {when}"
        bars.append(
            f'<rect class="bar {run.status.value}" x="{x:.1f}" y="{_HEIGHT - height:.1f}" '
            f'width="{bar:.1f}" height="{height:.1f}"><title>{escape(label)}</title></rect>'
        )
    summary = f"Duration of the last {len(shown)} finished runs; the longest took {tallest:.0f} ms."
    svg = (
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" '
        f'aria-label="{escape(summary)}" preserveAspectRatio="none">'
        f"<title>{escape(summary)}</title>{''.join(bars)}</svg>"
    )
    return Markup(svg)


def _duration_ms(run: RunRecord) -> float:
    if run.started_us is None or run.finished_us is None:
        return 0.0
    return (run.finished_us - run.started_us) / 1000


_DECIDED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.INTERRUPTED})
"""The outcomes a success rate counts: a call made that worked or did not. Missed, skipped and
cancelled fires made no call, and a run still going has no outcome yet."""
_SPARK_BAR = 4
_SPARK_HEIGHT = 16


@dataclass(frozen=True)
class Outcomes:
    """What the jobs list says of a job's newest runs."""

    last: RunRecord | None
    succeeded: int
    decided: int
    sparkline: Markup

    @property
    def rate(self) -> str:
        """ "92%", or "" when no call has an outcome yet."""
        return f"{100 * self.succeeded // self.decided}%" if self.decided else ""


def outcomes(runs: list[RunRecord]) -> Outcomes:
    """``runs`` newest first: the last one, the success rate, and a sparkline (oldest on the
    left, one tick per run: tall and green if it succeeded, short and red if it failed)."""
    decided = [run for run in runs if run.status in _DECIDED]
    succeeded = sum(run.status is RunStatus.SUCCEEDED for run in decided)
    return Outcomes(runs[0] if runs else None, succeeded, len(decided), _sparkline(decided))


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
