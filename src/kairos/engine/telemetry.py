"""What the engine counts for ``/metrics``: plain numbers, updated on the dispatch path at the
cost of a dict update or a bisect, and read by the metrics collector only when scraped."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass

from kairos.models import RunStatus

__all__ = ["Histogram", "LagReading", "RecentLag", "Telemetry"]

LAG_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
CLAIM_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


class Histogram:
    """Observations counted per bucket (``le`` bounds, and one past the last for ``+Inf``)."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus wants them, ``+Inf`` last."""
        total, pairs = 0, []
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            total += count
            pairs.append((bound, total))
        return pairs


@dataclass(frozen=True, slots=True)
class LagReading:
    """Lag over the last minute or so: how many calls began, their mean and largest lag."""

    calls: int
    mean_s: float
    max_s: float


class RecentLag:
    """Lag of the calls begun in the last ``_SLOTS`` slots of ``_SLOT_S`` seconds (the current
    one included): a few numbers a call, read by the overview."""

    _SLOT_S = 10.0
    _SLOTS = 6

    def __init__(self) -> None:
        # Per slot: its number (monotonic seconds // _SLOT_S), calls, lag sum, lag max.
        self._slots: list[list[float]] = [[-1.0, 0.0, 0.0, 0.0] for _ in range(self._SLOTS)]

    def observe(self, lag_s: float, now_s: float) -> None:
        number = now_s // self._SLOT_S
        slot = self._slots[int(number) % self._SLOTS]
        if slot[0] != number:
            slot[:] = [number, 0.0, 0.0, 0.0]
        slot[1] += 1
        slot[2] += lag_s
        slot[3] = max(slot[3], lag_s)

    def reading(self, now_s: float | None = None) -> LagReading:
        number = (time.monotonic() if now_s is None else now_s) // self._SLOT_S
        live = [slot for slot in self._slots if number - self._SLOTS < slot[0] <= number]
        calls = int(sum(slot[1] for slot in live))
        total = sum(slot[2] for slot in live)
        return LagReading(
            calls, total / calls if calls else 0.0, max((s[3] for s in live), default=0.0)
        )


class Telemetry:
    def __init__(self) -> None:
        self.fires: Counter[str] = Counter()
        """Ended fires and attempts of this node, by the status they were recorded with."""
        self.lag = Histogram(LAG_BUCKETS_S)
        """Seconds from when a run was due to when its call began."""
        self.recent_lag = RecentLag()
        """The same, over the last minute only."""
        self.durations: dict[str, Histogram] = {}
        """Seconds a call took, by outcome."""
        self.claims = Histogram(CLAIM_BUCKETS)
        """Runs started per claim that started any."""
        self.store_errors: Counter[str] = Counter()
        """Store calls that failed (the database unreachable), by what was being done."""

    def claimed(self, started: int, recorded: dict[RunStatus, int]) -> None:
        if started:
            self.claims.observe(started)
        for status, count in recorded.items():
            self.fires[status.value] += count

    def started(self, lag_s: float) -> None:
        lag_s = max(lag_s, 0.0)
        self.lag.observe(lag_s)
        self.recent_lag.observe(lag_s, time.monotonic())

    def ended(self, status: RunStatus, duration_s: float | None) -> None:
        self.fires[status.value] += 1
        if duration_s is not None:
            histogram = self.durations.get(status.value)
            if histogram is None:
                histogram = self.durations[status.value] = Histogram(DURATION_BUCKETS_S)
            histogram.observe(duration_s)

    def store_error(self, operation: str) -> None:
        self.store_errors[operation] += 1
