"""A job's recent runs as a small inline SVG bar chart: one bar per run, oldest on the left,
its height the call's duration and its colour (and label) the outcome. Drawn on the server:
no chart library to ship, and it reads without scripts."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from kairos.clock import from_us
from kairos.models import RunRecord

__all__ = ["runs_chart"]

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
