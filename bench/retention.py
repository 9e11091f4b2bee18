"""Run retention's chunks on a big runs table: how long each holds the store's writer.

In process, on a SQLite file filled directly with ``runs`` rows (1,000 jobs x 1,000 runs by
default), timing each kind of chunk the background retention runs (``kairos.engine.retention``).
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from kairos.engine import retention
from kairos.store import store_for_url

NOW = 1_800_000_000_000_000
_INSERT = (
    "INSERT INTO kairos_runs (job_id, scheduled_for_us, attempt, status, manual, node_id,"
    " started_us, finished_us) VALUES (?, ?, 1, 'succeeded', 0, 'n', ?, ?)"
)


@dataclass(frozen=True)
class Chunks:
    runs: int
    trim_nothing_ms: float
    trim_ms: float
    window_nothing_ms: float
    window_full_ms: float


async def chunks(jobs: int = 1_000, per_job: int = 1_000) -> Chunks:
    with tempfile.TemporaryDirectory(prefix="kairos-retention-") as tmp:
        path = Path(tmp) / "runs.db"
        store = store_for_url(f"sqlite:///{path}")
        await store.open()
        await store.close()
        with sqlite3.connect(path) as conn:
            rows = ((f"j{i % jobs}", NOW + i, NOW + i, NOW + i) for i in range(jobs * per_job))
            conn.executemany(_INSERT, rows)
        store = store_for_url(f"sqlite:///{path}")
        await store.open()
        try:
            size = retention._JOBS_PER_CHUNK
            over = per_job - max(1, int(per_job * retention._SLACK))

            async def timed(fn: object) -> float:
                started = time.perf_counter()
                await fn  # type: ignore[misc]
                return (time.perf_counter() - started) * 1000

            nothing = await timed(store.purge_runs([(f"j{i}", per_job, None) for i in range(size)]))
            trim = await timed(
                store.purge_runs([(f"j{i}", over, None) for i in range(size, 2 * size)])
            )
            quiet = await timed(store.purge_expired_runs(0, retention._ROWS_PER_CHUNK))
            full = await timed(
                store.purge_expired_runs(NOW + jobs * per_job, retention._ROWS_PER_CHUNK)
            )
        finally:
            await store.close()
    return Chunks(jobs * per_job, nothing, trim, quiet, full)
