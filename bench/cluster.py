"""The cluster workloads: 1, 2 and 3 replicas on one PostgreSQL, MariaDB or Redis store."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.client import epoch_us, iso, load_jobs, log, reset, target_stats, wait_for_deliveries
from bench.processes import Process, create_server_database, drop_server_database, start_kairos
from bench.stats import percentile

__all__ = ["ClusterRun", "cluster_run"]


@dataclass
class ClusterRun:
    replicas: int
    burst_delivered: int
    burst_duplicates: int
    burst_last_s: float
    burst_fires_per_s: float
    burst_lag_p99_ms: float
    sustained_due_per_s: float
    sustained_fires_per_s: float
    sustained_lag_p99_ms: float
    sustained_duplicates: int


async def cluster_run(
    replicas: int, admin_url: str, target: str, burst_size: int, sustained_jobs: int
) -> ClusterRun:
    url = create_server_database(admin_url)
    servers: list[Process] = []
    bases: list[str] = []
    try:
        for _ in range(replicas):
            server, base = start_kairos(url)
            servers.append(server)
            bases.append(base)
        await reset(target)
        log(f"cluster x{replicas}: burst {burst_size}")
        due = time.time() + 5 + burst_size / 2_000
        body = {
            "trigger": {"type": "date", "run_date": iso(due)},
            "target": {"url": f"{target}/hit"},
            "misfire_grace_time": 3600,
        }
        await _spread(bases, [(f"burst-{i}", body) for i in range(burst_size)])
        records = await wait_for_deliveries(target, burst_size, not_before=due)
        burst = _burst_figures(records, due)
        await reset(target)
        log(f"cluster x{replicas}: sustained {sustained_jobs} jobs at 1/s")
        sustained = await _sustained(bases, target, sustained_jobs)
    finally:
        for server in servers:
            server.stop()
        drop_server_database(admin_url, url)
    return ClusterRun(replicas, *burst, *sustained)


async def _spread(bases: list[str], jobs: list[tuple[str, dict[str, Any]]]) -> None:
    shares = [jobs[i :: len(bases)] for i in range(len(bases))]
    await asyncio.gather(
        *(load_jobs(base, share, concurrency=1) for base, share in zip(bases, shares, strict=True))
    )


def _burst_figures(records: list[list[Any]], due: float) -> tuple[int, int, float, float, float]:
    due_us = int(due * 1_000_000)
    keys = Counter((r[1], r[2], r[3]) for r in records)
    lags = [(r[0] - due_us) / 1000 for r in records]
    last_s = max(lags, default=float("nan")) / 1000
    rate = len(keys) / last_s if last_s > 0 else float("nan")
    return len(keys), sum(n - 1 for n in keys.values()), last_s, rate, percentile(lags, 99)


async def _sustained(bases: list[str], target: str, count: int) -> tuple[float, float, float, int]:
    body = {
        "trigger": {"type": "interval", "seconds": 1},
        "target": {"url": f"{target}/tick"},
        "coalesce": False,
        "misfire_grace_time": 3600,
    }
    await _spread(bases, [(f"tick-{i}", body) for i in range(count)])
    window_start = time.time() + 3
    window_s = 30.0
    await asyncio.sleep(window_start + window_s + 5 - time.time())
    records = await target_stats(target)
    start_us, end_us = int(window_start * 1e6), int((window_start + window_s) * 1e6)
    in_window = [r for r in records if start_us <= epoch_us(r[2]) < end_us]
    keys = Counter((r[1], r[2], r[3]) for r in in_window)
    lags = [(r[0] - epoch_us(r[2])) / 1000 for r in in_window]
    return count, len(keys) / window_s, percentile(lags, 99), sum(n - 1 for n in keys.values())
