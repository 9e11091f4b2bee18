"""What the web UI's live pages cost each time they ask again, on a big PostgreSQL store.

In process: a fresh PostgreSQL database filled directly (``--jobs`` jobs, default 1,000,000, a
tenth tagged ``nightly``; the first page's jobs with a full kept history of 1,000 runs each and
``--runs`` more runs, default 1,000,000, spread over the others), then each live fragment asked
for through the UI's ASGI app exactly as a visible tab asks for it every second (session cookie,
``HX-Request``, ``HX-Target``): the whole request, reads and rendering. Also the reads alone
for a list that would count each job's whole kept history instead of its newest 20 runs. (The
runs are written directly, not through the store: the summaries that the overview and the jobs
list's success rates read are empty here.)

``python -m bench.ui_reads [--jobs N] [--runs N] [--samples N] [--postgres URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import psycopg
from fastapi import FastAPI

from bench.processes import create_server_database, drop_server_database
from bench.stats import percentile
from kairos.library import Kairos
from kairos.models import JobSpec
from kairos.pagination import job_query
from kairos.settings import Settings
from kairos.web.jobs import PAGE, RECENT

__all__ = ["Poll", "main", "measure"]

TOKEN = "bench-admin-token-for-the-ui-reads"
KEPT = 1_000
NOW_US = 1_800_000_000_000_000
_SPEC = {
    "trigger": {"type": "cron", "expression": "0 0 1 1 *"},
    "target": {"url": "http://127.0.0.1:9/"},
}


@dataclass(frozen=True)
class Poll:
    what: str
    reads: str
    p50_ms: float
    p99_ms: float


async def measure(admin_url: str, jobs: int, runs: int, samples: int) -> list[Poll]:
    url = create_server_database(admin_url)
    try:
        settings = Settings(database_url=url, admin_token=TOKEN)
        async with Kairos(settings=settings) as kairos:
            await kairos.scheduler.put_job("template", JobSpec.model_validate(_SPEC))
            await asyncio.to_thread(_fill, url, jobs, runs)
            return await _polls(kairos, samples)
    finally:
        drop_server_database(admin_url, url)


def _fill(url: str, jobs: int, runs: int) -> None:
    started = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as db:
        columns = [
            row[0]
            for row in db.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'kairos_jobs' AND column_name <> 'id'"
            )
        ]
        listed = ", ".join(columns)
        db.execute(
            f"INSERT INTO kairos_jobs (id, {listed}) SELECT 'j' || lpad(g::text, 7, '0'), {listed}"
            " FROM kairos_jobs, generate_series(1, %s) g WHERE id = 'template'",
            (jobs,),
        )
        db.execute("DELETE FROM kairos_jobs WHERE id = 'template'")
        # Next runs spread over a year, in no order of id, as a real store's are.
        spread_us = "(abs(hashtext(id)::bigint) % 31536000) * 1000000"
        db.execute(
            f"UPDATE kairos_jobs SET next_run_us = next_fire_us + {spread_us},"
            f" next_fire_us = next_fire_us + {spread_us}"
        )
        db.execute(
            "INSERT INTO kairos_job_tags (tag, job_id) SELECT 'nightly', 'j' || lpad(g::text, 7,"
            " '0') FROM generate_series(1, %s, 10) g",
            (jobs,),
        )
        history = (
            "INSERT INTO kairos_runs (job_id, scheduled_for_us, attempt, status, manual, node_id,"
            " started_us, finished_us) SELECT {job}, {at}, 1,"
            " CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'succeeded' END, false, 'n', {at}, {at}"
            " FROM generate_series(1, %s) g"
        )
        first_page = f"'j' || lpad((1 + g %% {PAGE})::text, 7, '0')"
        db.execute(history.format(job=first_page, at=f"{NOW_US} + g"), (PAGE * KEPT,))
        spread = f"'j' || lpad((1 + (g::bigint * 7919) %% {jobs})::text, 7, '0')"
        db.execute(history.format(job=spread, at=f"{NOW_US} - g"), (runs,))
        db.execute("VACUUM ANALYZE")
    took_s = time.perf_counter() - started
    print(f"filled {jobs:,} jobs and {runs + PAGE * KEPT:,} runs in {took_s:.0f} s")


async def _polls(kairos: Kairos, samples: int) -> list[Poll]:
    app = FastAPI()
    app.mount("/ui", kairos.ui())
    scheduler = kairos.scheduler
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", cookies={"kairos_session": TOKEN}
    ) as client:

        def fragment(path: str, target: str) -> Callable[[], Awaitable[object]]:
            headers = {"HX-Request": "true", "HX-Target": target}

            async def ask() -> object:
                answer = await client.get(path, headers=headers)
                assert answer.status_code == 200, answer.text[:200]
                return answer

            return ask

        def reads_only(kept: int) -> Callable[[], Awaitable[object]]:
            async def read() -> object:
                query = job_query(prefix=None, state=None, tag=None, sort="id")
                page = await scheduler.job_page(query, PAGE, None)
                return await scheduler.newest_runs([job.id for job in page.items], kept)

            return read

        async def counts_only() -> object:
            query = job_query(prefix=None, state=None, tag=None, sort="id")
            page = await scheduler.job_page(query, PAGE, None)
            return await scheduler.job_run_counts([job.id for job in page.items])

        cases = [
            (
                "jobs list, first page",
                f"1 page of {PAGE} jobs + {PAGE} x newest {RECENT} runs + their counts",
                fragment("/ui/jobs", "job-rows"),
            ),
            (
                "jobs list, tag filter",
                f"1 page of {PAGE} tagged jobs + {PAGE} x newest {RECENT} runs + their counts",
                fragment("/ui/jobs?tag=nightly", "job-rows"),
            ),
            (
                "jobs list, by next run",
                f"1 page of {PAGE} jobs by next run + {PAGE} x newest {RECENT} runs + their counts",
                fragment("/ui/jobs?sort=next_run", "job-rows"),
            ),
            (
                "job page history",
                "the job + its newest 50 runs",
                fragment("/ui/jobs/j0000001", "job-history"),
            ),
            ("runs page", "the newest 51 runs", fragment("/ui/runs", "run-list")),
            (
                "overview",
                "run summaries + the 10 soonest jobs + the nodes",
                fragment("/ui/overview", "overview"),
            ),
            (
                "jobs list, first page: its reads alone",
                f"1 page of {PAGE} jobs + {PAGE} x newest {RECENT} runs",
                reads_only(RECENT),
            ),
            (
                "jobs list, first page: its counts alone",
                f"1 page of {PAGE} jobs + their counts",
                counts_only,
            ),
            (
                "(not done) whole kept history",
                f"reads only: 1 page + {PAGE} x {KEPT:,} runs",
                reads_only(KEPT),
            ),
        ]
        polls = []
        for what, reads, ask in cases:
            await ask()  # warm
            timings = []
            for _ in range(samples):
                started = time.perf_counter()
                await ask()
                timings.append((time.perf_counter() - started) * 1000)
            polls.append(Poll(what, reads, percentile(timings, 50), percentile(timings, 99)))
        return polls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    polls = asyncio.run(measure(args.postgres, args.jobs, args.runs, args.samples))
    print("| poll | reads | p50 ms | p99 ms |\n|---|---|---|---|")
    for poll in polls:
        print(f"| {poll.what} | {poll.reads} | {poll.p50_ms:.1f} | {poll.p99_ms:.1f} |")


if __name__ == "__main__":
    main()
