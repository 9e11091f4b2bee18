"""The ``python`` section's tables: no-op async python tasks in process and in an app.

Fires/s are stated beside the store's own rate (the claims workload's date runs/s), measured
just before in the same run: the machine's speed varies too much for a fixed figure to compare.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from bench.claims import ClaimRun, claims
from bench.client import log
from bench.python_tasks import (
    AppBurst,
    PythonBurst,
    PythonTicking,
    app_burst,
    python_burst,
    python_ticking,
)
from bench.report import med, repeat, row, table

__all__ = ["python_section"]

BURST_COLUMNS = [
    "called",
    "duplicates",
    "missing",
    "lag p50 ms",
    "lag p99 ms",
    "last call s",
    "fires/s",
    "of store rate",
]


async def python_section(
    args: argparse.Namespace, new_db: Callable[[str], str], work_dir: Path
) -> list[str]:
    """The store's rate, then the in-process burst and sustained tables and the app's."""
    log("python: the store's rate for reference")
    runs: list[ClaimRun] = await repeat(args.repeat, lambda: claims("date"))
    store_rate = med(runs, "runs_per_s")
    return [
        f"Store's rate (claims, date jobs, measured just before): {store_rate:,.0f} runs/s",
        "",
        *await _bursts(args, new_db, store_rate),
        *await _ticking(args, new_db),
        *await _app_bursts(args, work_dir, store_rate),
    ]


async def _bursts(
    args: argparse.Namespace, new_db: Callable[[str], str], store_rate: float
) -> list[str]:
    rows = []
    for size in args.python_burst:

        async def one(size: int = size) -> PythonBurst:
            log(f"python burst {size}")
            return await python_burst(size, new_db("python-burst"), args.concurrency)

        runs = await repeat(args.repeat, one)
        cells = [f"{size:,}", *_burst_cells(runs, store_rate)]
        cells += [f"{med(runs, 'succeeded'):,.0f}", f"{med(runs, 'settled_s'):.2f}"]
        cells += [f"{med(runs, 'load_per_s'):,.0f}"]
        rows.append(row(*cells))
    return table(
        "### Python tasks, burst: N date jobs calling a no-op async task, due at one instant "
        "(Kairos embedded in one process, SQLite)",
        ["N", *BURST_COLUMNS, "runs succeeded", "last run finished s", "load jobs/s"],
        rows,
    )


async def _ticking(args: argparse.Namespace, new_db: Callable[[str], str]) -> list[str]:
    rows = []
    for jobs in args.python_rates:

        async def one(jobs: int = jobs) -> PythonTicking:
            log(f"python ticking: {jobs} jobs for {args.window:.0f} s")
            db = new_db("python-ticking")
            return await python_ticking(jobs, args.window, db, args.concurrency)

        runs = await repeat(args.repeat, one)
        cells = [f"{jobs:,}", f"{med(runs, 'due_per_s'):,.0f}", f"{med(runs, 'fires_per_s'):,.0f}"]
        cells += [f"{med(runs, n):.1f}" for n in ("lag_p50_ms", "lag_p99_ms")]
        cells += [f"{med(runs, n):,.0f}" for n in ("missed", "duplicates", "cpu_percent")]
        rows.append(row(*cells))
    return table(
        "### Python tasks, sustained: interval jobs every second calling a no-op async task, "
        f"phases spread, {args.window:.0f} s (Kairos embedded in one process, SQLite)",
        [
            *("jobs", "due/s", "fires/s", "lag p50 ms", "lag p99 ms", "missed", "duplicates"),
            "process CPU %",
        ],
        rows,
    )


async def _app_bursts(args: argparse.Namespace, work_dir: Path, store_rate: float) -> list[str]:
    size, rows = args.python_burst[0], []
    for workers in args.python_workers:

        async def one(workers: int = workers) -> AppBurst:
            log(f"python app: uvicorn --workers {workers}, burst {size}")
            return await app_burst(workers, size, args.postgres, work_dir)

        runs = await repeat(args.repeat, one)
        cells = [str(workers), *_burst_cells(runs, store_rate)]
        fewest, most = med(runs, "fewest_in_a_worker"), med(runs, "most_in_a_worker")
        rows.append(row(*cells, f"{fewest:,.0f} to {most:,.0f}"))
    return table(
        f"### Python tasks in an app: uvicorn --workers N, a burst of {size:,} date jobs calling "
        "a no-op async task, loaded through its REST API (one PostgreSQL database)",
        ["workers", *BURST_COLUMNS, "calls per worker"],
        rows,
    )


def _burst_cells(runs: list[PythonBurst] | list[AppBurst], store_rate: float) -> list[str]:
    """The columns of ``BURST_COLUMNS``: medians of the runs."""
    cells = [f"{med(runs, 'delivered'):,.0f}"]
    cells += [f"{med(runs, n):.0f}" for n in ("duplicates", "missing", "lag_p50_ms", "lag_p99_ms")]
    fires = med(runs, "fires_per_s")
    cells += [f"{med(runs, 'last_call_s'):.2f}", f"{fires:,.0f}", f"{fires / store_rate:.0%}"]
    return cells
