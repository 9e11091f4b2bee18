"""``RecentLag``: the lag of the calls begun in the last minute, and only those."""

from __future__ import annotations

from kairos.engine.telemetry import LagReading, RecentLag


def test_recent_lag_covers_the_last_minute_only() -> None:
    lag = RecentLag()
    assert lag.reading(now_s=0.0) == LagReading(0, 0.0, 0.0)
    lag.observe(0.5, now_s=1.0)
    lag.observe(1.5, now_s=25.0)
    assert lag.reading(now_s=30.0) == LagReading(2, 1.0, 1.5)
    # Sixty seconds on, the slot of the first call has gone; that of the second has not.
    assert lag.reading(now_s=61.0) == LagReading(1, 1.5, 1.5)
    lag.observe(0.1, now_s=125.0)  # reuses the second call's slot, a minute and more later
    assert lag.reading(now_s=125.0) == LagReading(1, 0.1, 0.1)
