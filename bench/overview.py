"""What the operator's overview costs to read on a big store: ``Scheduler.overview``'s reads
(``Store.run_summary``, the next fires, the nodes) and a page of jobs' run counts.

In process, on a fresh PostgreSQL database and a SQLite file filled directly with bulk SQL:
``--jobs`` jobs (default 1,000,000; next runs spread over a year, one in a thousand tripped) and
``--runs`` runs (default 10,000,000) spread over them, ended over the last two days (a tenth
failed, a few hundred still running or queued), with the summaries the stores keep built from
them as the stores would have (each job's counts and last call, runs ended per minute). Then the
overview is read ``--samples`` times.

``python -m bench.overview [--jobs N] [--runs N] [--samples N] [--postgres URL] [--only pg|sqlite]``
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench.processes import create_server_database, drop_server_database
from bench.stats import percentile
from kairos.engine.overview import read_overview
from kairos.engine.telemetry import Telemetry
from kairos.models import JobSpec
from kairos.store import Store, store_for_url

__all__ = ["Read", "main", "measure"]

_SPEC = JobSpec.model_validate(
    {
        "trigger": {"type": "cron", "expression": "0 0 1 1 *"},
        "target": {"url": "http://127.0.0.1:9/"},
    }
).model_dump_json()
_ENDED = ("succeeded", "failed", "missed", "skipped", "interrupted", "cancelled")
_DAYS_US = 2 * 86_400 * 1_000_000
_MINUTE_US = 60_000_000


@dataclass(frozen=True)
class Read:
    store: str
    what: str
    p50_ms: float
    p99_ms: float


def _statements(jobs: int, runs: int, now_us: int, series: str, job_id: str) -> list[str]:
    """The fill, in the SQL both databases speak; ``series``: ``g`` from 1 to the bound given
    as ``{n}`` (a table function or a recursive CTE); ``job_id``: the id of job ``{g}``."""
    job_of_run = job_id.format(g=f"(1 + ((g * 7919) % {jobs}))")
    ended_at = f"{now_us} - ((g * 104729) % {_DAYS_US})"
    status = (
        "CASE WHEN g % 20000 = 1 THEN 'running' WHEN g % 20000 = 2 THEN 'scheduled'"
        " WHEN g % 10 = 0 THEN 'failed' WHEN g % 97 = 0 THEN 'missed' ELSE 'succeeded' END"
    )
    minute = f"finished_us - finished_us % {_MINUTE_US}"
    counts = ", ".join(f"SUM(CASE WHEN status = '{s}' THEN 1 ELSE 0 END)" for s in _ENDED)
    return [
        # One in a thousand jobs tripped by the circuit breaker.
        "INSERT INTO kairos_jobs (id, spec, paused, next_fire_us, next_run_us, created_us,"
        " updated_us, failures, pause_reason) SELECT "
        + job_id.format(g="g")
        + f", '{_SPEC}', g % 1000 = 0, {now_us} + (g * 7919 % 31536000) * 1000000,"
        f" {now_us} + (g * 7919 % 31536000) * 1000000, {now_us}, {now_us}, 0,"
        " CASE WHEN g % 1000 = 0 THEN 'paused by the circuit breaker' END FROM "
        + series.format(n=jobs),
        "INSERT INTO kairos_runs (id, job_id, scheduled_for_us, attempt, status, manual, node_id,"
        " started_us, finished_us, due_us) SELECT g, "
        + job_of_run
        + f", g, 1, {status}, false, 'n', {ended_at},"
        f" CASE WHEN {status} IN ('running', 'scheduled') THEN NULL ELSE {ended_at} END,"
        f" CASE WHEN {status} = 'scheduled' THEN {now_us} ELSE NULL END FROM "
        + series.format(n=runs),
        f"INSERT INTO kairos_job_stats (job_id, {', '.join(_ENDED)})"
        f" SELECT job_id, {counts} FROM kairos_runs GROUP BY job_id",
        # Each job's last call: its newest run by end time.
        "UPDATE kairos_job_stats SET (last_status, last_ended_us) = (SELECT status, finished_us"
        " FROM kairos_runs r WHERE r.job_id = kairos_job_stats.job_id AND r.status IN"
        " ('succeeded', 'failed') ORDER BY finished_us DESC LIMIT 1)",
        f"INSERT INTO kairos_run_counts (minute_us, node_id, status, ended) SELECT {minute},"
        " 'n', status, COUNT(*) FROM kairos_runs WHERE finished_us IS NOT NULL"
        f" GROUP BY {minute}, status",
    ]


def _fill_pg(url: str, jobs: int, runs: int, now_us: int) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as db:
        series = "generate_series(1::bigint, {n}) g"
        job_id = "'j' || lpad(({g})::text, 7, '0')"
        for sql in _statements(jobs, runs, now_us, series, job_id):
            db.execute(sql.encode())
        db.execute("VACUUM ANALYZE")


def _fill_sqlite(path: Path, jobs: int, runs: int, now_us: int) -> None:
    db = sqlite3.connect(path)
    series = (
        "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n})"
        " SELECT g FROM s)"
    )
    job_id = "'j' || printf('%07d', {g})"
    for sql in _statements(jobs, runs, now_us, series, job_id):
        db.execute(sql)
        db.commit()
    db.execute("ANALYZE")
    db.close()


async def _reads(name: str, store: Store, samples: int) -> list[Read]:
    telemetry = Telemetry()
    page = [f"j{i:07d}" for i in range(1, 51)]

    async def overview() -> object:
        return await read_overview(
            store, telemetry, node_id="n", now_us=time.time_ns() // 1000, limit=10
        )

    async def counts() -> object:
        return await store.job_run_counts(page)

    reads: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("Scheduler.overview (limit 10)", overview),
        ("job_run_counts, a page of 50 jobs", counts),
    ]
    found = []
    for what, read in reads:
        await read()
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            await read()
            timings.append((time.perf_counter() - started) * 1000)
        found.append(Read(name, what, percentile(timings, 50), percentile(timings, 99)))
    return found


async def _measure_one(name: str, url: str, fill: Callable[[], None], samples: int) -> list[Read]:
    store = store_for_url(url)
    await store.open()  # the schema, migrations included
    try:
        started = time.perf_counter()
        await asyncio.to_thread(fill)
        print(f"{name}: filled in {time.perf_counter() - started:.0f} s", flush=True)
        summary = await store.run_summary([time.time_ns() // 1000 - 86_400 * 1_000_000], 3)
        print(f"{name}: {summary}", flush=True)
        return await _reads(name, store, samples)
    finally:
        await store.close()


async def measure(
    admin_url: str, jobs: int, runs: int, samples: int, only: str | None
) -> list[Read]:
    now_us = time.time_ns() // 1000
    found: list[Read] = []
    if only in (None, "pg"):
        url = create_server_database(admin_url)
        try:
            fill: Any = lambda: _fill_pg(url, jobs, runs, now_us)  # noqa: E731
            found += await _measure_one("PostgreSQL", url, fill, samples)
        finally:
            drop_server_database(admin_url, url)
    if only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "kairos.db"
            fill = lambda: _fill_sqlite(path, jobs, runs, now_us)  # noqa: E731
            found += await _measure_one("SQLite", f"sqlite:///{path}", fill, samples)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", choices=["pg", "sqlite"])
    args = parser.parse_args()
    reads = asyncio.run(measure(args.postgres, args.jobs, args.runs, args.samples, args.only))
    print("| store | read | p50 ms | p99 ms |\n|---|---|---|---|")
    for read in reads:
        print(f"| {read.store} | {read.what} | {read.p50_ms:.1f} | {read.p99_ms:.1f} |")


if __name__ == "__main__":
    main()
