"""``python -m bench.run``: burst, API and ceiling workloads against real processes.

Prints a Markdown table (medians of ``--repeat`` runs) and writes it to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from bench.processes import TOKEN, start_kairos, start_target
from bench.stats import median, percentile

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEED_REFERENCE = (
    "Seed design (APScheduler BackgroundScheduler + SQLite job store + a new HTTP client per "
    "call): 5,000 jobs due at one instant delivered over 184 s (27 fires/s)."
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Load helpers --------------------------------------------------------------------------------


async def put_jobs(
    base: str, bodies: list[tuple[str, dict[str, Any]]], concurrency: int
) -> list[float]:
    """PUT every job, ``concurrency`` at a time; return each request's latency in ms."""
    latencies: list[float] = []
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, headers=AUTH, connector=connector) as http:

        async def worker() -> None:
            for job_id, body in queue:
                started = time.perf_counter()
                async with http.put(f"/jobs/{job_id}", json=body) as response:
                    if response.status not in (200, 201):
                        raise RuntimeError(
                            f"PUT {job_id}: {response.status} {await response.text()}"
                        )
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def target_stats(target: str) -> list[list[Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{target}/__stats") as response:
        records: list[list[Any]] = json.loads(await response.read())
        return records


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


async def wait_for_deliveries(
    target: str, expected: int, not_before: float, stall_s: float = 20
) -> list[list[Any]]:
    """Poll the target until ``expected`` deliveries, or no progress for ``stall_s`` seconds
    counted from the due instant ``not_before`` (epoch seconds)."""
    await asyncio.sleep(max(0.0, not_before - time.time()))
    last_count, last_change = -1, time.monotonic()
    while True:
        records = await target_stats(target)
        if len(records) >= expected:
            return records
        if len(records) != last_count:
            last_count, last_change = len(records), time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            log(f"  stalled at {len(records)}/{expected} deliveries")
            return records
        await asyncio.sleep(0.1)


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


async def reset(target: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{target}/__reset") as response:
        await response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", default="1000,10000", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument("--repeat", default=3, type=int)
    parser.add_argument("--only", default="burst,api,ceiling", type=lambda s: s.split(","))
    parser.add_argument("--concurrency", type=int, help="KAIROS_MAX_CONCURRENT_RUNS")
    parser.add_argument("--out", default=Path(__file__).with_name("RESULTS.md"), type=Path)
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    print(report)
    args.out.write_text("# Kairos benchmark results\n\n" + report)


if __name__ == "__main__":
    main()
