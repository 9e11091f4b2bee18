"""Scale at rest: a server holding 100,000 or 1,000,000 jobs that are not due."""

from __future__ import annotations

import asyncio
import base64
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.client import AUTH, load_jobs, log
from bench.processes import cpu_seconds, rss_mib, start_kairos
from bench.stats import percentile

__all__ = ["AtRest", "at_rest", "load_at_rest"]

_YEARLY: dict[str, Any] = {
    "trigger": {"type": "cron", "expression": "0 0 1 1 *"},
    "target": {"url": "http://127.0.0.1:9/"},
}
_SAMPLES = 200


@dataclass
class AtRest:
    jobs: int
    load_per_s: float
    ready_s: float
    idle_cpu_percent: float
    """Of one core, while nothing is due."""
    rss_mib: float
    list_p50_ms: float
    list_p99_ms: float
    put_p50_ms: float
    put_p99_ms: float


def _job_id(index: int) -> str:
    return f"rest-{index:07d}"


async def load_at_rest(jobs: int, db_url: str, env: dict[str, str]) -> float:
    """Store ``jobs`` yearly cron jobs in the database; return the load rate."""
    server, base = start_kairos(db_url, env)
    try:
        log(f"at rest: loading {jobs:,} jobs")
        return await load_jobs(base, [(_job_id(i), _YEARLY) for i in range(jobs)])
    finally:
        server.stop()


async def at_rest(
    db_url: str, jobs: int, load_rate: float, idle_s: float, env: dict[str, str]
) -> AtRest:
    """Start a server on the loaded database; measure start-up, idling and API latency (its
    ``PUT`` requests replace jobs with the same spec, so runs can share one database)."""
    server, base = start_kairos(db_url, env)
    try:
        await asyncio.sleep(1)  # past start-up's own work
        cpu_before = cpu_seconds(server.pid)
        await asyncio.sleep(idle_s)
        idle_cpu = (cpu_seconds(server.pid) - cpu_before) / idle_s * 100
        rng = random.Random(jobs)
        async with aiohttp.ClientSession(base, headers=AUTH) as http:
            list_ms = []
            for _ in range(_SAMPLES):
                after = _job_id(rng.randrange(jobs)).encode()
                cursor = base64.urlsafe_b64encode(after).decode().rstrip("=")
                started = time.perf_counter()
                async with http.get("/jobs", params={"cursor": cursor, "limit": 100}) as response:
                    assert response.status == 200, await response.text()
                    await response.read()
                list_ms.append((time.perf_counter() - started) * 1000)
            put_ms = []
            for _ in range(_SAMPLES):
                started = time.perf_counter()
                async with http.put(f"/jobs/{_job_id(rng.randrange(jobs))}", json=_YEARLY) as r:
                    assert r.status == 200, await r.text()
                put_ms.append((time.perf_counter() - started) * 1000)
        rss = rss_mib(server.pid)
    finally:
        server.stop()
    return AtRest(
        jobs=jobs,
        load_per_s=load_rate,
        ready_s=server.ready_s,
        idle_cpu_percent=idle_cpu,
        rss_mib=rss,
        list_p50_ms=percentile(list_ms, 50),
        list_p99_ms=percentile(list_ms, 99),
        put_p50_ms=percentile(put_ms, 50),
        put_p99_ms=percentile(put_ms, 99),
    )
