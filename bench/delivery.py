"""Workloads against modest targets: a burst to a server with a small accept queue, and a slow
target beside a fast one. One ``kairos serve`` with SQLite and its defaults."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.client import epoch_us, iso, load_jobs, log, run_statuses, target_stats, wait_settled
from bench.processes import start_kairos, start_threaded_target
from bench.stats import percentile

__all__ = ["Mixed", "SmallTarget", "mixed_targets", "small_target"]


@dataclass
class SmallTarget:
    size: int
    delivered: int
    """Fires that reached the target (distinct ``Idempotency-Key``)."""
    duplicates: int
    failed: int
    missed: int
    last_delivery_s: float
    """From the due instant to the last delivery."""
    settled_s: float
    """From the due instant until every run had finished."""


async def small_target(size: int, db_url: str, env: dict[str, str], logs: Path) -> SmallTarget:
    """``size`` date jobs due at one instant calling a ``ThreadingHTTPServer`` (listen backlog 5,
    a thread per connection) in its own process. The jobs keep every default."""
    calls = logs / f"small-{time.time_ns()}.jsonl"
    target, target_url = start_threaded_target(calls)
    server, base = start_kairos(db_url, env)
    try:
        due = time.time() + 5 + size / 2_000
        body = {
            "trigger": {"type": "date", "run_date": iso(due)},
            "target": {"url": f"{target_url}/hit"},
        }
        await load_jobs(base, [(f"small-{i}", body) for i in range(size)])
        if time.time() > due:
            log(f"  warning: loading {size} jobs overran the due instant")
        await asyncio.sleep(max(0.0, due - time.time()))
        await wait_settled(base, deadline=due + 120)
        settled_s = time.time() - due
        statuses = await run_statuses(base)
    finally:
        server.stop()
        target.stop()
    received = [e for e in _read(calls) if e["path"] == "/hit"]
    keys = Counter(e["headers"]["Idempotency-Key"] for e in received)
    last_us = max((e["received_us"] for e in received), default=float("nan"))
    return SmallTarget(
        size=size,
        delivered=len(keys),
        duplicates=sum(n - 1 for n in keys.values()),
        failed=statuses["failed"],
        missed=statuses["missed"],
        last_delivery_s=(last_us - due * 1_000_000) / 1_000_000,
        settled_s=settled_s,
    )


@dataclass
class Mixed:
    slow_jobs: int
    fast_jobs: int
    lag_p50_ms: float
    """Of the fast target's calls: its receive time minus the fire's scheduled time."""
    lag_p99_ms: float
    lag_max_ms: float
    missed: int
    """Fires of the fast jobs due in the window that never reached the fast target."""
    slow_per_s: float
    """Calls the slow target received per second of the window."""


async def mixed_targets(
    slow_jobs: int,
    fast_jobs: int,
    window_s: float,
    fast_target: str,
    db_url: str,
    env: dict[str, str],
    logs: Path,
) -> Mixed:
    """``slow_jobs`` interval jobs every second calling a ``ThreadingHTTPServer`` that answers
    after 2 s, beside ``fast_jobs`` every second calling the fast target, phases spread, for
    ``window_s`` seconds. The jobs keep every default (``max_instances`` 1, ``coalesce``)."""
    calls = logs / f"slow-{time.time_ns()}.jsonl"
    target, slow_target = start_threaded_target(calls)
    server, base = start_kairos(db_url, env)
    try:
        anchor = math.floor(time.time())
        slow = _every_second("slow", slow_jobs, anchor, f"{slow_target}/slow?delay=2")
        fast = _every_second("fast", fast_jobs, anchor, f"{fast_target}/fast")
        await load_jobs(base, slow + fast)
        # The window starts once the slow calls have built up: each holds its call for 2 s.
        start = math.ceil(time.time()) + 3
        await asyncio.sleep(start + window_s + 3 - time.time())  # and its last fires arrive
        records = await target_stats(fast_target)
    finally:
        server.stop()
        target.stop()
    start_us, end_us = int(start * 1e6), int((start + window_s) * 1e6)
    in_window = [r for r in records if start_us <= epoch_us(r[2]) < end_us]
    lags = [(r[0] - epoch_us(r[2])) / 1000 for r in in_window]
    fires = {(r[1], r[2]) for r in in_window}
    slow_calls = [e for e in _read(calls) if start_us <= e["received_us"] < end_us]
    return Mixed(
        slow_jobs=slow_jobs,
        fast_jobs=fast_jobs,
        lag_p50_ms=percentile(lags, 50),
        lag_p99_ms=percentile(lags, 99),
        lag_max_ms=max(lags, default=float("nan")),
        missed=fast_jobs * int(window_s) - len(fires),
        slow_per_s=len([e for e in slow_calls if e["path"] == "/slow"]) / window_s,
    )


def _every_second(name: str, count: int, anchor: int, url: str) -> list[tuple[str, dict[str, Any]]]:
    """``count`` jobs every second calling ``url``, their phases spread over the second."""
    return [
        (
            f"{name}-{i}",
            {
                "trigger": {
                    "type": "interval",
                    "seconds": 1,
                    "start_date": iso(anchor + i / count),
                },
                "target": {"url": url},
            },
        )
        for i in range(count)
    ]


def _read(calls: Path) -> list[dict[str, Any]]:
    """The calls a threaded target logged, one JSON object a line."""
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text().splitlines() if line.strip()]
