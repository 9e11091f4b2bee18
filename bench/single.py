"""Workloads on one ``kairos serve`` process with SQLite: bursts, ticking jobs, API writes."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.client import (
    epoch_us,
    iso,
    load_jobs,
    log,
    put_jobs,
    target_stats,
    wait_for_deliveries,
)
from bench.processes import cpu_seconds, rss_mib, start_kairos
from bench.stats import percentile

__all__ = ["ApiRun", "Burst", "Ticking", "api_writes", "burst", "ticking"]


@dataclass
class Burst:
    size: int
    delivered: int
    duplicates: int
    missing: int
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    last_delivery_s: float
    fires_per_s: float
    """Delivered over the time from the due instant to the last delivery."""
    load_per_s: float


async def burst(size: int, target: str, db_url: str, env: dict[str, str]) -> Burst:
    """``size`` date jobs due at one instant, bulk-loaded beforehand."""
    server, base = start_kairos(db_url, env)
    try:
        due = time.time() + 5 + size / 2_000
        body = {
            "trigger": {"type": "date", "run_date": iso(due)},
            "target": {"url": f"{target}/hit"},
            "misfire_grace_time": 3600,
        }
        load_rate = await load_jobs(base, [(f"burst-{i}", body) for i in range(size)])
        if time.time() > due:
            log(f"  warning: loading {size} jobs overran the due instant; lag is inflated")
        records = await wait_for_deliveries(target, size, not_before=due)
    finally:
        server.stop()
    due_us = int(due * 1_000_000)
    keys = Counter((r[1], r[2], r[3]) for r in records)
    lags = [(r[0] - due_us) / 1000 for r in records]
    return Burst(
        size=size,
        delivered=len(keys),
        duplicates=sum(n - 1 for n in keys.values()),
        missing=size - len(keys),
        lag_p50_ms=percentile(lags, 50),
        lag_p99_ms=percentile(lags, 99),
        lag_max_ms=max(lags, default=float("nan")),
        last_delivery_s=max(lags, default=float("nan")) / 1000,
        fires_per_s=len(keys) / (max(lags, default=float("nan")) / 1000),
        load_per_s=load_rate,
    )


@dataclass
class Ticking:
    jobs: int
    due_per_s: float
    fires_per_s: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float
    missed: int
    duplicates: int
    cpu_percent: float
    """Of one core, over the measured window."""
    rss_mib: float


async def ticking(
    jobs: int,
    window_s: float,
    target: str,
    db_url: str,
    env: dict[str, str],
    *,
    aligned: bool = False,
) -> Ticking:
    """``jobs`` interval jobs firing every second for ``window_s`` seconds.

    Their phases are spread evenly over the second, as for jobs created at different moments;
    ``aligned`` makes them all fire at the same instant of every second instead.
    """
    server, base = start_kairos(db_url, env)
    try:
        anchor = math.floor(time.time())
        specs = [
            (
                f"tick-{i}",
                {
                    "trigger": {
                        "type": "interval",
                        "seconds": 1,
                        "start_date": iso(anchor + (0 if aligned else i / jobs)),
                    },
                    "target": {"url": f"{target}/tick"},
                    "coalesce": False,
                    "misfire_grace_time": 3600,
                },
            )
            for i in range(jobs)
        ]
        await load_jobs(base, specs)
        # The window starts on a whole second, after the first fires settled.
        start = math.ceil(time.time()) + 2
        await asyncio.sleep(start - time.time())
        cpu_before = cpu_seconds(server.pid)
        await asyncio.sleep(start + window_s - time.time())
        cpu_used = cpu_seconds(server.pid) - cpu_before
        rss = rss_mib(server.pid)
        await asyncio.sleep(3)  # let the window's last fires arrive
        records = await target_stats(target)
    finally:
        server.stop()
    start_us, end_us = int(start * 1e6), int((start + window_s) * 1e6)
    in_window = [r for r in records if start_us <= epoch_us(r[2]) < end_us]
    keys = Counter((r[1], r[2], r[3]) for r in in_window)
    lags = [(r[0] - epoch_us(r[2])) / 1000 for r in in_window]
    due = jobs * int(window_s)
    return Ticking(
        jobs=jobs,
        due_per_s=due / window_s,
        fires_per_s=len(keys) / window_s,
        lag_p50_ms=percentile(lags, 50),
        lag_p99_ms=percentile(lags, 99),
        lag_max_ms=max(lags, default=float("nan")),
        missed=due - len(keys),
        duplicates=sum(n - 1 for n in keys.values()),
        cpu_percent=cpu_used / window_s * 100,
        rss_mib=rss,
    )


@dataclass
class ApiRun:
    label: str
    rps: float
    p50_ms: float
    p99_ms: float


async def api_writes(db_url: str, env: dict[str, str]) -> list[ApiRun]:
    """``PUT /jobs/{id}``: 2,000 sequential, then 5,000 from 32 connections."""
    server, base = start_kairos(db_url, env)
    body: dict[str, Any] = {
        "trigger": {"type": "cron", "expression": "0 0 1 1 *"},
        "target": {"url": "http://127.0.0.1:9/"},
    }
    results = []
    try:
        for label, count, concurrency in (("sequential", 2000, 1), ("32 concurrent", 5000, 32)):
            jobs = [(f"api-{concurrency}-{i}", body) for i in range(count)]
            started = time.perf_counter()
            latencies = await put_jobs(base, jobs, concurrency)
            elapsed = time.perf_counter() - started
            results.append(
                ApiRun(label, count / elapsed, percentile(latencies, 50), percentile(latencies, 99))
            )
    finally:
        server.stop()
    return results
