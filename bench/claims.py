"""The store's side of every fire, alone: claim due jobs and record their outcomes.

In process, on a SQLite file (or the store at a URL given: a fresh PostgreSQL or MariaDB
database, Redis under a fresh key prefix): ``jobs`` jobs due at one instant are claimed
``batch`` at a time (as the dispatcher does, each claim writing the previous claim's outcomes),
with no HTTP call in between. CPU time per run is what the scheduler's process spends on its
store for each fire: the part of a burst that no HTTP client or target shares.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kairos.engine.policies import Planner
from kairos.models import JobRecord, JobSpec, RunStatus
from kairos.store import FinishedRun, store_for_url

__all__ = ["ClaimRun", "claims"]

DUE_US = 1_900_000_000_000_000
TRIGGERS: dict[str, dict[str, Any]] = {
    "date": {"type": "date", "run_date": "2030-03-17T17:46:40+00:00"},
    "interval": {"type": "interval", "seconds": 60, "start_date": "2030-03-17T17:46:40+00:00"},
}


@dataclass(frozen=True)
class ClaimRun:
    trigger: str
    jobs: int
    batch: int
    cpu_us_per_run: float
    runs_per_s: float


async def claims(
    trigger: str, jobs: int = 20_000, batch: int = 100, url: str | None = None
) -> ClaimRun:
    """``url``: an empty store's (default: a new SQLite file)."""
    with tempfile.TemporaryDirectory(prefix="kairos-claims-") as tmp:
        store = store_for_url(url or f"sqlite:///{Path(tmp) / 'claims.db'}")
        await store.open()
        try:
            spec = JobSpec.model_validate(
                {"trigger": TRIGGERS[trigger], "target": {"url": "http://127.0.0.1:9/"}}
            )
            records = [JobRecord(f"j{i}", spec, DUE_US, DUE_US, 1, 1) for i in range(jobs)]
            for start in range(0, jobs, 5_000):
                await store.upsert_jobs(records[start : start + 5_000])
            plan, now_us = Planner(), DUE_US + 1_000
            claimed, finished = 0, list[FinishedRun]()
            cpu, wall = time.process_time(), time.perf_counter()
            while claimed < jobs:
                claim = await store.claim_due(
                    now_us, batch, "bench", plan, ahead_us=50_000, finished=finished
                )
                claimed += len(claim.started)
                finished = [
                    FinishedRun(s.run.id, RunStatus.SUCCEEDED, now_us, now_us + 1, 200)
                    for s in claim.started
                ]
            await store.finish_runs("bench", finished)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        finally:
            await store.close()
    return ClaimRun(trigger, jobs, batch, cpu / claimed * 1e6, claimed / wall)
