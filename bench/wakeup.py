"""How late one node hears of another's change: the wake-up latency of the change feed.

In process: two stores on one fresh database (PostgreSQL: ``NOTIFY``; MariaDB: the
``kairos_changes`` table, read every 50 ms; Redis: pub/sub). One writes ``changes`` jobs, one
at a time at random moments; the other watches. The latency is from the write's commit (its call
returning) until the watcher's callback runs for that job; a watcher that hears of the change
before the writer's call has returned (Redis's pub/sub message can overtake the reply to the
``EXEC``) counts as 0.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from bench.processes import create_server_database, drop_server_database
from bench.stats import percentile
from kairos.models import JobRecord, JobSpec
from kairos.store import store_for_url

__all__ = ["Wakeup", "wakeup"]

_DUE_US = 1_900_000_000_000_000


@dataclass(frozen=True)
class Wakeup:
    changes: int
    p50_ms: float
    p99_ms: float
    max_ms: float


async def wakeup(admin_url: str, changes: int = 200) -> Wakeup:
    url = create_server_database(admin_url)
    writer, watcher = store_for_url(url), store_for_url(url)
    try:
        await writer.open()
        await watcher.open()
        heard: dict[str, float] = {}
        arrived = asyncio.Event()

        def on_change(due_us: int | None, job_id: str | None) -> None:
            if job_id is not None and job_id not in heard:
                heard[job_id] = time.perf_counter()
                arrived.set()

        await watcher.watch(on_change)
        spec = JobSpec.model_validate(
            {"trigger": {"type": "interval", "seconds": 60}, "target": {"url": "http://x/"}}
        )
        latencies = []
        for i in range(changes):
            await asyncio.sleep(random.uniform(0, 0.05))  # at any phase of the feed's reads
            arrived.clear()
            job_id = f"w{i}"
            await writer.upsert_jobs([JobRecord(job_id, spec, _DUE_US, _DUE_US, 1, 1)])
            committed = time.perf_counter()
            async with asyncio.timeout(10):
                while job_id not in heard:
                    await arrived.wait()
                    arrived.clear()
            latencies.append(max(heard[job_id] - committed, 0.0) * 1000)
    finally:
        await watcher.close()
        await writer.close()
        drop_server_database(admin_url, url)
    latencies.sort()
    return Wakeup(changes, percentile(latencies, 50), percentile(latencies, 99), latencies[-1])
