"""Python function targets: no-op async tasks fired by Kairos embedded in a program.

In process (``Kairos`` on a SQLite file, on the benchmark's own event loop): a burst of date
jobs due at one instant, and interval jobs every second at a given count. The task records each
call (the job, the fire's nominal time, when it was called), so every figure comes from the
function's side; the burst also reads the run ledger (runs succeeded, the last one finished).

As an app (``bench.python_app`` run by ``uvicorn --workers N`` on one PostgreSQL database): the
same burst loaded through the app's REST API, each worker process's task appending to a file of
its own, to compare fires/s with one worker and with several.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.client import AUTH, iso, load_jobs, log
from bench.processes import TOKEN, Process, create_server_database, drop_server_database, free_port
from bench.stats import percentile
from kairos import Kairos
from kairos.models import JobSpec, RunStatus
from kairos.settings import Settings
from kairos.tasks import RunContext

__all__ = [
    "AppBurst",
    "PythonBurst",
    "PythonTicking",
    "app_burst",
    "python_burst",
    "python_ticking",
]

NOOP = {"type": "python", "task": "noop"}
Call = tuple[str, int, int]
"""One call of the task: job id, the fire's nominal time and when it was called (epoch us)."""


class _Calls:
    """The calls of the in-process no-op task, in memory."""

    def __init__(self) -> None:
        self.records: list[Call] = []

    def record(self, ctx: RunContext) -> None:
        called_us = time.time_ns() // 1000
        self.records.append((ctx.job_id, int(ctx.scheduled_for.timestamp() * 1e6), called_us))


def _embedded(db_url: str, concurrency: int | None) -> tuple[Kairos, _Calls]:
    """A ``Kairos`` on ``db_url`` whose task ``noop`` only records its call."""
    options: dict[str, Any] = {"database_url": db_url, "http_workers": 0}
    if concurrency:
        options["max_concurrent_runs"] = concurrency
    kairos = Kairos(settings=Settings(**options), on_admin_token=lambda _token: None)
    calls = _Calls()

    @kairos.task("noop")
    async def noop(ctx: RunContext) -> None:
        calls.record(ctx)

    return kairos, calls


async def _put_all(kairos: Kairos, jobs: list[tuple[str, dict[str, Any]]]) -> float:
    """Create the jobs in batches of 5,000, as ``POST /jobs:batch`` does; return jobs/s."""
    started = time.perf_counter()
    for start in range(0, len(jobs), 5_000):
        batch = [(i, JobSpec.model_validate(body)) for i, body in jobs[start : start + 5_000]]
        await kairos.scheduler.put_jobs(batch)
    return len(jobs) / (time.perf_counter() - started)


async def _wait_for_calls(
    count: Callable[[], int], expected: int, not_before: float, stall_s: float = 20
) -> None:
    """Poll ``count()`` until ``expected`` calls, or no progress for ``stall_s`` seconds from
    the due instant ``not_before`` (epoch seconds)."""
    await asyncio.sleep(max(0.0, not_before - time.time()))
    last_count, last_change = -1, time.monotonic()
    while (seen := count()) < expected:
        if seen != last_count:
            last_count, last_change = seen, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            log(f"  stalled at {seen}/{expected} calls")
            return
        await asyncio.sleep(0.05)


@dataclass
class PythonBurst:
    size: int
    delivered: int
    duplicates: int
    missing: int
    lag_p50_ms: float
    lag_p99_ms: float
    last_call_s: float
    fires_per_s: float
    """Distinct fires called over the time from the due instant to the last call."""
    succeeded: int
    """Runs the ledger holds as succeeded."""
    settled_s: float
    """From the due instant until the last run finished, by the ledger."""
    load_per_s: float


async def python_burst(size: int, db_url: str, concurrency: int | None = None) -> PythonBurst:
    """``size`` date jobs calling the no-op task, due at one instant, in process."""
    kairos, calls = _embedded(db_url, concurrency)
    async with kairos:
        due = time.time() + 5 + size / 2_000
        body = {
            "trigger": {"type": "date", "run_date": iso(due)},
            "target": NOOP,
            "misfire_grace_time": 3600,
        }
        load_rate = await _put_all(kairos, [(f"burst-{i}", body) for i in range(size)])
        if time.time() > due:
            log(f"  warning: loading {size} jobs overran the due instant; lag is inflated")
        await _wait_for_calls(lambda: len(calls.records), size, not_before=due)
        await _settle(kairos, deadline=time.time() + 30)
        succeeded, last_finished = await _ledger(kairos)
    figures = _burst_figures(calls.records, size, due)
    return PythonBurst(
        size,
        *figures,
        succeeded=succeeded,
        settled_s=last_finished - due,
        load_per_s=load_rate,
    )


def _burst_figures(
    records: list[Call], size: int, due: float
) -> tuple[int, int, int, float, float, float, float]:
    """Delivered, duplicates, missing, lag p50 and p99 (ms), last call (s), fires/s."""
    due_us = int(due * 1e6)
    keys = Counter((job, scheduled) for job, scheduled, _ in records)
    lags = [(called - due_us) / 1000 for _, _, called in records]
    last_s = max(lags, default=float("nan")) / 1000
    rate = len(keys) / last_s if last_s > 0 else float("nan")
    duplicates = sum(n - 1 for n in keys.values())
    lag_p50, lag_p99 = percentile(lags, 50), percentile(lags, 99)
    return len(keys), duplicates, size - len(keys), lag_p50, lag_p99, last_s, rate


async def _settle(kairos: Kairos, deadline: float) -> None:
    """Wait until no run is running or queued, or until ``deadline`` (epoch seconds)."""
    while time.time() < deadline:
        running = await kairos.runs(status=RunStatus.RUNNING, limit=1)
        queued = await kairos.runs(status=RunStatus.SCHEDULED, limit=1)
        if not running.items and not queued.items:
            return
        await asyncio.sleep(0.1)
    log("  warning: runs still pending at the deadline")


async def _ledger(kairos: Kairos) -> tuple[int, float]:
    """Runs succeeded and when the last of them finished (epoch seconds)."""
    succeeded, finished, cursor = 0, list[float](), None
    while True:
        page = await kairos.runs(status=RunStatus.SUCCEEDED, cursor=cursor, limit=1000)
        succeeded += len(page.items)
        finished += [run.finished_at.timestamp() for run in page.items if run.finished_at]
        cursor = page.next_cursor
        if cursor is None:
            return succeeded, max(finished, default=float("nan"))


@dataclass
class PythonTicking:
    jobs: int
    due_per_s: float
    fires_per_s: float
    lag_p50_ms: float
    lag_p99_ms: float
    missed: int
    duplicates: int
    cpu_percent: float
    """Of one core, the whole process, over the window."""


async def python_ticking(
    jobs: int, window_s: float, db_url: str, concurrency: int | None = None
) -> PythonTicking:
    """``jobs`` interval jobs every second calling the no-op task, phases spread over the
    second, for ``window_s`` seconds, in process."""
    kairos, calls = _embedded(db_url, concurrency)
    async with kairos:
        anchor = math.floor(time.time())
        specs = [
            (
                f"tick-{i}",
                {
                    "trigger": {
                        "type": "interval",
                        "seconds": 1,
                        "start_date": iso(anchor + i / jobs),
                    },
                    "target": NOOP,
                    "coalesce": False,
                    "misfire_grace_time": 3600,
                },
            )
            for i in range(jobs)
        ]
        await _put_all(kairos, specs)
        # The window starts on a whole second, after the first fires settled.
        start = math.ceil(time.time()) + 2
        await asyncio.sleep(start - time.time())
        cpu_before = time.process_time()
        await asyncio.sleep(start + window_s - time.time())
        cpu_used = time.process_time() - cpu_before
        await asyncio.sleep(3)  # let the window's last fires run
    start_us, end_us = int(start * 1e6), int((start + window_s) * 1e6)
    in_window = [r for r in calls.records if start_us <= r[1] < end_us]
    keys = Counter((job, scheduled) for job, scheduled, _ in in_window)
    lags = [(called - scheduled) / 1000 for _, scheduled, called in in_window]
    due = jobs * int(window_s)
    return PythonTicking(
        jobs=jobs,
        due_per_s=due / window_s,
        fires_per_s=len(keys) / window_s,
        lag_p50_ms=percentile(lags, 50),
        lag_p99_ms=percentile(lags, 99),
        missed=due - len(keys),
        duplicates=sum(n - 1 for n in keys.values()),
        cpu_percent=cpu_used / window_s * 100,
    )


@dataclass
class AppBurst:
    workers: int
    delivered: int
    duplicates: int
    missing: int
    lag_p50_ms: float
    lag_p99_ms: float
    last_call_s: float
    fires_per_s: float
    fewest_in_a_worker: int
    most_in_a_worker: int


async def app_burst(workers: int, size: int, admin_url: str, work_dir: Path) -> AppBurst:
    """``size`` date jobs due at one instant in ``bench.python_app`` run by ``uvicorn
    --workers N`` on a fresh PostgreSQL database, loaded through the app's REST API."""
    db_url = create_server_database(admin_url)
    fires_dir = work_dir / f"fires-{workers}-{time.time_ns()}"
    fires_dir.mkdir()
    server: Process | None = None
    try:
        server, base = _start_app(workers, db_url, fires_dir)
        await _wait_for_nodes(base, workers, deadline=time.time() + 60)
        due = time.time() + 5 + size / 2_000
        body = {
            "trigger": {"type": "date", "run_date": iso(due)},
            "target": NOOP,
            "misfire_grace_time": 3600,
        }
        await load_jobs(base, [(f"burst-{i}", body) for i in range(size)])
        if time.time() > due:
            log(f"  warning: loading {size} jobs overran the due instant; lag is inflated")
        await _wait_for_calls(lambda: _count_lines(fires_dir), size, not_before=due)
    finally:
        if server is not None:
            server.stop()
        drop_server_database(admin_url, db_url)
    per_worker = {path.name: _read_calls(path) for path in fires_dir.iterdir()}
    records = [call for calls in per_worker.values() for call in calls]
    counts = [len(calls) for calls in per_worker.values()]
    return AppBurst(
        workers,
        *_burst_figures(records, size, due),
        fewest_in_a_worker=min(counts, default=0) if len(counts) == workers else 0,
        most_in_a_worker=max(counts, default=0),
    )


def _start_app(workers: int, db_url: str, fires_dir: Path) -> tuple[Process, str]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.python_app:app", "--port", str(port)]
    command += ["--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    env = {**os.environ, "KAIROS_DATABASE_URL": db_url, "KAIROS_ADMIN_TOKEN": TOKEN}
    env |= {"KAIROS_LOG_LEVEL": "warning", "BENCH_FIRES_DIR": str(fires_dir)}
    base = f"http://127.0.0.1:{port}/scheduler"
    return Process(command, env, f"{base}/readyz"), base


async def _wait_for_nodes(base: str, workers: int, deadline: float) -> None:
    """Wait until every worker process has joined the cluster, so all of them claim."""
    async with aiohttp.ClientSession(headers=AUTH) as http:
        while time.time() < deadline:
            async with http.get(f"{base}/cluster") as response:
                if len((await response.json())["nodes"]) >= workers:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"fewer than {workers} nodes joined the cluster at {base}")


def _count_lines(fires_dir: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in fires_dir.iterdir())


def _read_calls(path: Path) -> list[Call]:
    calls = []
    for line in path.read_text().splitlines():
        job, scheduled, called = line.split("\t")
        calls.append((job, int(scheduled), int(called)))
    return calls
