"""``python -m bench.run``: burst, API and ceiling workloads against real processes.

Prints a Markdown table (medians of ``--repeat`` runs) and writes it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from bench.client import log, put_jobs, reset, wait_for_deliveries
from bench.cluster import ClusterRun, cluster_run
from bench.processes import start_kairos, start_target
from bench.stats import median, percentile

SEED_REFERENCE = (
    "Seed design (APScheduler BackgroundScheduler + SQLite job store + a new HTTP client per "
    "call): 5,000 jobs due at one instant delivered over 184 s (27 fires/s)."
)


# Workloads -----------------------------------------------------------------------------------


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
    load_rps: float


async def burst(size: int, target: str, db_dir: Path, env: dict[str, str]) -> Burst:
    server, base = start_kairos(f"sqlite:///{db_dir}/burst-{size}.db", env)
    try:
        due = time.time() + max(5.0, size / 250)
        run_date = datetime.fromtimestamp(due, UTC).isoformat()
        body = {
            "trigger": {"type": "date", "run_date": run_date},
            "target": {"url": f"{target}/hit"},
            "misfire_grace_time": 3600,
        }
        started = time.perf_counter()
        await put_jobs(base, [(f"burst-{i}", body) for i in range(size)], 32)
        load_s = time.perf_counter() - started
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
        load_rps=size / load_s,
    )


@dataclass
class ApiRun:
    label: str
    rps: float
    p50_ms: float
    p99_ms: float


async def api_writes(db_dir: Path, env: dict[str, str]) -> list[ApiRun]:
    server, base = start_kairos(f"sqlite:///{db_dir}/api.db", env)
    body = {
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


async def ceiling(target: str, count: int = 10_000, concurrency: int = 200) -> float:
    """Calls/s of aiohttp alone (the client Kairos uses) against the same target."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        queue = iter(range(count))

        async def worker() -> None:
            for i in queue:
                headers = {"X-Kairos-Job-Id": f"ceiling-{i}"}
                async with http.post(f"{target}/ceiling", headers=headers) as response:
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


# Orchestration and report --------------------------------------------------------------------


def machine() -> str:
    memory = "?"
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return (
        f"{os.cpu_count()} cores, {memory} memory, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, {datetime.now(UTC):%Y-%m-%d}"
    )


T = TypeVar("T")


async def repeat(times: int, make: Callable[[], Coroutine[Any, Any, T]]) -> list[T]:
    return [await make() for _ in range(times)]


def med(items: list[Any], name: str) -> float:
    return median([getattr(item, name) for item in items])


async def main_async(args: argparse.Namespace) -> str:
    env = {"KAIROS_MAX_CONCURRENT_RUNS": str(args.concurrency)} if args.concurrency else {}
    target_process, target = start_target()
    lines = [f"Machine: {machine()}", ""]
    try:
        with tempfile.TemporaryDirectory(prefix="kairos-bench-") as tmp:
            if "burst" in args.only:
                lines += await burst_section(args, target, Path(tmp), env)
            if "api" in args.only:
                lines += await api_section(args, Path(tmp), env)
            if "cluster" in args.only:
                lines += await cluster_section(args, target)
            if "ceiling" in args.only:
                log("ceiling")
                await reset(target)
                rates = [await ceiling(target) for _ in range(args.repeat)]
                lines += [
                    f"Ceiling: aiohttp alone, 200 concurrent: {median(rates):,.0f} calls/s",
                    "",
                ]
    finally:
        target_process.stop()
    lines.append(SEED_REFERENCE)
    return "\n".join(lines) + "\n"


async def burst_section(
    args: argparse.Namespace, target: str, db_dir: Path, env: dict[str, str]
) -> list[str]:
    lines = [
        "### Burst: N date jobs due at one instant (SQLite)",
        "",
        "| N | delivered | duplicates | missing | lag p50 ms | lag p99 ms | lag max ms "
        "| last delivery s | API load writes/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size in args.sizes:

        async def one(size: int = size) -> Burst:
            await reset(target)
            log(f"burst {size}")
            return await burst(size, target, db_dir, env)

        runs = await repeat(args.repeat, one)
        cells = [f"{size:,}", f"{med(runs, 'delivered'):,.0f}", f"{med(runs, 'duplicates'):.0f}"]
        cells += [f"{med(runs, 'missing'):.0f}"]
        cells += [f"{med(runs, name):.0f}" for name in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms")]
        cells += [f"{med(runs, 'last_delivery_s'):.2f}", f"{med(runs, 'load_rps'):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


async def cluster_section(args: argparse.Namespace, target: str) -> list[str]:
    lines = [
        f"### Cluster: replicas on one PostgreSQL (burst {args.cluster_burst:,} date jobs; "
        f"sustained {args.cluster_jobs:,} jobs at 1 s for 30 s)",
        "",
        "| replicas | burst delivered | dup | last delivery s | burst fires/s | burst lag p99 ms "
        "| sustained due/s | sustained fires/s | sustained lag p99 ms | dup |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for count in args.replicas:

        async def one(count: int = count) -> ClusterRun:
            return await cluster_run(
                count, args.postgres, target, args.cluster_burst, args.cluster_jobs
            )

        runs = await repeat(args.repeat, one)
        cells = [str(count), f"{med(runs, 'burst_delivered'):,.0f}"]
        cells += [f"{med(runs, 'burst_duplicates'):.0f}", f"{med(runs, 'burst_last_s'):.2f}"]
        cells += [f"{med(runs, 'burst_fires_per_s'):,.0f}", f"{med(runs, 'burst_lag_p99_ms'):.0f}"]
        cells += [f"{med(runs, 'sustained_due_per_s'):,.0f}"]
        cells += [f"{med(runs, 'sustained_fires_per_s'):,.0f}"]
        cells += [f"{med(runs, 'sustained_lag_p99_ms'):.0f}"]
        cells += [f"{med(runs, 'sustained_duplicates'):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


async def api_section(args: argparse.Namespace, db_dir: Path, env: dict[str, str]) -> list[str]:
    log("api")
    lines = ["### API: PUT /jobs/{id} (SQLite)", "", "| mode | req/s | p50 ms | p99 ms |"]
    lines.append("|---|---|---|---|")
    api_runs = await repeat(args.repeat, lambda: api_writes(db_dir, env))
    for index, label in enumerate(("sequential", "32 concurrent")):
        rows = [run[index] for run in api_runs]
        lines.append(
            f"| {label} | {med(rows, 'rps'):.0f} | {med(rows, 'p50_ms'):.1f} "
            f"| {med(rows, 'p99_ms'):.1f} |"
        )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", default="1000,10000", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--repeat", default=3, type=int)
    parser.add_argument("--only", default="burst,api,cluster,ceiling", type=lambda s: s.split(","))
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL database to create the cluster's databases from",
    )
    parser.add_argument(
        "--replicas", default="1,2,3", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--cluster-burst", default=10_000, type=int)
    parser.add_argument("--cluster-jobs", default=1_000, type=int)
    parser.add_argument("--concurrency", type=int, help="KAIROS_MAX_CONCURRENT_RUNS")
    parser.add_argument("--out", default=Path(__file__).with_name("RESULTS.md"), type=Path)
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    print(report)
    args.out.write_text("# Kairos benchmark results\n\n" + report)


if __name__ == "__main__":
    main()
