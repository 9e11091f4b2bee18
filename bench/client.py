"""HTTP helpers shared by the workloads: loading jobs and reading the target's records."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bench.processes import TOKEN

__all__ = [
    "AUTH",
    "epoch_us",
    "iso",
    "load_jobs",
    "log",
    "put_jobs",
    "reset",
    "run_statuses",
    "target_count",
    "target_stats",
    "wait_for_deliveries",
    "wait_settled",
]

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def iso(epoch_s: float) -> str:
    """An instant as the API takes it."""
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


def epoch_us(iso_time: str) -> int:
    """An ISO instant (as ``X-Kairos-Scheduled-For`` carries it) in epoch microseconds."""
    return int(datetime.fromisoformat(iso_time).timestamp() * 1_000_000)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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


async def load_jobs(
    base: str, jobs: list[tuple[str, dict[str, Any]]], batch: int = 5_000, concurrency: int = 2
) -> float:
    """Create or replace ``jobs`` with ``POST <base>/jobs:batch`` (``base`` may end in the
    prefix an app mounts the API under); return jobs written per second."""
    chunks = iter(range(0, len(jobs), batch))
    async with aiohttp.ClientSession(headers=AUTH) as http:

        async def worker() -> None:
            for start in chunks:
                body = {"jobs": [{"id": i} | b for i, b in jobs[start : start + batch]]}
                async with http.post(f"{base}/jobs:batch", json=body) as response:
                    if response.status != 200:
                        raise RuntimeError(f"batch: {response.status} {await response.text()}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return len(jobs) / (time.perf_counter() - started)


async def target_stats(target: str) -> list[list[Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{target}/__stats") as response:
        records: list[list[Any]] = json.loads(await response.read())
        return records


async def target_count(target: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{target}/__count") as response:
        count: int = json.loads(await response.read())
        return count


async def wait_for_deliveries(
    target: str, expected: int, not_before: float, stall_s: float = 20
) -> list[list[Any]]:
    """Poll the target until ``expected`` deliveries, or no progress for ``stall_s`` seconds
    counted from the due instant ``not_before`` (epoch seconds). Polls only the count: fetching
    every record each time would load the machine it measures."""
    await asyncio.sleep(max(0.0, not_before - time.time()))
    last_count, last_change = -1, time.monotonic()
    while True:
        count = await target_count(target)
        if count >= expected:
            break
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > stall_s:
            log(f"  stalled at {count}/{expected} deliveries")
            break
        await asyncio.sleep(0.1)
    return await target_stats(target)


async def reset(target: str) -> None:
    async with aiohttp.ClientSession() as http, http.post(f"{target}/__reset") as response:
        await response.read()


async def wait_settled(base: str, deadline: float) -> None:
    """Poll the server at ``base`` until every date job has fired and no run is queued or
    running, or until ``deadline`` (epoch seconds). Asks for one item of each: cheap enough to
    poll while a workload runs."""
    pending = ("/jobs?state=scheduled", "/runs?status=running", "/runs?status=scheduled")
    async with aiohttp.ClientSession(base, headers=AUTH) as http:
        while time.time() < deadline:
            for path in pending:
                async with http.get(path, params={"limit": "1"}) as response:
                    if (await response.json())["items"]:
                        break
            else:
                return
            await asyncio.sleep(0.2)
    log("  warning: runs still pending at the deadline")


async def run_statuses(base: str) -> Counter[str]:
    """How many runs the server at ``base`` holds with each status."""
    statuses: Counter[str] = Counter()
    cursor = None
    async with aiohttp.ClientSession(base, headers=AUTH) as http:
        while True:
            params = {"limit": "1000"} | ({"cursor": cursor} if cursor else {})
            async with http.get("/runs", params=params) as response:
                page = await response.json()
            statuses.update(run["status"] for run in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return statuses
