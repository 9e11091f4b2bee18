"""``python -m bench.run``: every workload against real processes, as one Markdown report.

Prints the medians of ``--repeat`` runs with the machine they ran on and writes them to
bench/RESULTS.md. ``--only`` picks sections: precision, burst, sustained, rest, api, postgres,
mariadb, redis, cluster, wakeup, retention, claims, small, mixed, python, ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from bench.claims import ClaimRun, claims
from bench.client import epoch_us, iso, log, reset, target_stats
from bench.cluster import ClusterRun, cluster_run
from bench.delivery import Mixed, SmallTarget, mixed_targets, small_target
from bench.processes import (
    create_server_database,
    drop_server_database,
    mariadb_reachable,
    pg_reachable,
    redis_reachable,
    start_target,
)
from bench.python_section import python_section
from bench.report import med, repeat, row, table
from bench.retention import Chunks, chunks
from bench.scale import AtRest, at_rest, load_at_rest
from bench.single import ApiRun, Burst, Ticking, api_writes, burst, ticking
from bench.stats import median, percentile
from bench.wakeup import Wakeup, wakeup
from kairos.executors import default_http_workers

SECTIONS = (
    "precision,burst,sustained,rest,api,postgres,mariadb,redis,cluster,wakeup,retention,claims,small,"
    "mixed,python,ceiling"
)
SERVER_NAMES = {"postgres": "PostgreSQL", "mariadb": "MariaDB", "redis": "Redis"}

SEED_REFERENCE = (
    "Seed design (APScheduler BackgroundScheduler + SQLite job store + a new HTTP client per "
    "call): 5,000 jobs due at one instant delivered over 184 s (27 fires/s)."
)


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


async def instant_ceiling(target: str, calls: int, window_s: float) -> list[float]:
    """aiohttp alone sending ``calls`` requests at the same instant of every second for
    ``window_s`` seconds, on warm connections: the lag of each at the target, in ms. What the
    machine allows for jobs that all fire at once."""
    connector = aiohttp.TCPConnector(limit=calls)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def call(i: int, scheduled_for: str) -> None:
            headers = {"X-Kairos-Job-Id": f"instant-{i}", "X-Kairos-Scheduled-For": scheduled_for}
            async with http.post(f"{target}/instant", headers=headers) as response:
                await response.read()

        await asyncio.gather(*(call(i, iso(0)) for i in range(calls)))  # opens the connections
        await reset(target)
        first = math.ceil(time.time()) + 1
        for second in range(first, first + math.ceil(window_s)):
            await asyncio.sleep(second - time.time())
            while time.time() < second:  # the sleep's timer may end a little early
                pass
            await asyncio.gather(*(call(i, iso(second)) for i in range(calls)))
        records = await target_stats(target)
    return [(r[0] - epoch_us(r[2])) / 1000 for r in records]


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


class Databases:
    """A fresh database per workload run: SQLite files in a directory, or databases created on
    a PostgreSQL or MariaDB server, or key prefixes on a Redis (``admin_url``; ``server`` names
    it), dropped by ``drop_all``."""

    def __init__(self, db_dir: Path, admin_url: str | None = None, server: str = "") -> None:
        self.db_dir = db_dir
        self.admin_url = admin_url
        self.label = "SQLite" if admin_url is None else f"{server}, 1 replica"
        self._created: list[str] = []

    def new(self, name: str) -> str:
        if self.admin_url is None:
            return f"sqlite:///{self.db_dir}/{name}-{time.time_ns()}.db"
        url = create_server_database(self.admin_url)
        self._created.append(url)
        return url

    def drop_all(self) -> None:
        if self.admin_url is not None:
            for url in self._created:
                drop_server_database(self.admin_url, url)
        self._created.clear()


class Bench:
    def __init__(self, args: argparse.Namespace, target: str, db_dir: Path) -> None:
        self.args = args
        self.target = target
        self.dbs = Databases(db_dir)
        self.env = {"KAIROS_MAX_CONCURRENT_RUNS": str(args.concurrency)} if args.concurrency else {}
        workers = default_http_workers() if args.http_workers is None else args.http_workers
        self.env["KAIROS_HTTP_WORKERS"] = str(workers)
        self.workers_label = ""
        if workers:
            plural = "es" if workers > 1 else ""
            self.workers_label = f"; HTTP calls in {workers} worker process{plural}"
        self.dbs.label += self.workers_label
        self.ceiling_rate = float("nan")

    async def ceiling(self) -> list[str]:
        log("ceiling")
        await reset(self.target)
        self.ceiling_rate = median([await ceiling(self.target) for _ in range(self.args.repeat)])
        return [
            f"Ceiling: aiohttp alone, 200 concurrent calls to the same target: "
            f"{self.ceiling_rate:,.0f} calls/s",
            "",
        ]

    async def _ticking(self, jobs: int, window_s: float, aligned: bool = False) -> list[Ticking]:
        async def one() -> Ticking:
            await reset(self.target)
            log(f"ticking: {jobs} jobs{' aligned' if aligned else ''} for {window_s:.0f} s")
            return await ticking(
                jobs, window_s, self.target, self.dbs.new("ticking"), self.env, aligned=aligned
            )

        return await repeat(self.args.repeat, one)

    async def precision(self) -> list[str]:
        rows = []
        for aligned in (False, True):
            runs = await self._ticking(100, self.args.window, aligned)
            phases = "all at the same instant" if aligned else "spread over the second"
            rows.append(
                row(
                    phases,
                    *(f"{med(runs, n):.1f}" for n in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms")),
                    f"{med(runs, 'missed'):.0f}",
                )
            )
        lags = await repeat(
            self.args.repeat, lambda: instant_ceiling(self.target, 100, self.args.window)
        )
        rows.append(
            row(
                "ceiling: aiohttp alone, 100 calls at the same instant",
                *(f"{median([percentile(r, n) for r in lags]):.1f}" for n in (50, 99)),
                f"{median([max(r) for r in lags]):.1f}",
                "-",
            )
        )
        return table(
            f"### Precision: 100 jobs every second for {self.args.window:.0f} s ({self.dbs.label})",
            ["phases", "lag p50 ms", "lag p99 ms", "lag max ms", "missed"],
            rows,
        )

    async def burst(self) -> list[str]:
        rows = []
        for size in self.args.sizes:

            async def one(size: int = size) -> Burst:
                await reset(self.target)
                log(f"burst {size}")
                return await burst(size, self.target, self.dbs.new("burst"), self.env)

            runs = await repeat(self.args.repeat, one)
            cells = [f"{size:,}", f"{med(runs, 'delivered'):,.0f}"]
            cells += [f"{med(runs, n):.0f}" for n in ("duplicates", "missing")]
            cells += [f"{med(runs, n):.0f}" for n in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms")]
            cells += [f"{med(runs, 'last_delivery_s'):.2f}"]
            fires = med(runs, "fires_per_s")
            cells += [f"{fires:,.0f}", f"{fires / self.ceiling_rate:.0%}"]
            cells += [f"{med(runs, 'load_per_s'):,.0f}"]
            rows.append(row(*cells))
        return table(
            f"### Burst: N date jobs due at one instant ({self.dbs.label})",
            [
                "N",
                "delivered",
                "duplicates",
                "missing",
                "lag p50 ms",
                "lag p99 ms",
                "lag max ms",
                "last delivery s",
                "fires/s",
                "of ceiling",
                "bulk load jobs/s",
            ],
            rows,
        )

    async def sustained(self, sizes: list[Size] | None = None) -> list[str]:
        rows = []
        for size in sizes or self.args.sustained:
            jobs = self._jobs(size)
            runs = await self._ticking(jobs, self.args.window)
            fires = med(runs, "fires_per_s")
            label = f"{jobs:,}" if isinstance(size, int) else f"{jobs:,} ({size:.0%} of ceiling)"
            cells = [label, f"{med(runs, 'due_per_s'):,.0f}", f"{fires:,.0f}"]
            cells += [f"{fires / self.ceiling_rate:.0%}"]
            cells += [f"{med(runs, n):.0f}" for n in ("lag_p50_ms", "lag_p99_ms", "missed")]
            cells += [f"{med(runs, 'duplicates'):.0f}", f"{med(runs, 'cpu_percent'):.0f}"]
            cells += [f"{med(runs, 'rss_mib'):.0f}"]
            rows.append(row(*cells))
        return table(
            f"### Sustained: interval jobs every second, phases spread, {self.args.window:.0f} s "
            f"({self.dbs.label})",
            [
                "jobs",
                "due/s",
                "fires/s",
                "of ceiling",
                "lag p50 ms",
                "lag p99 ms",
                "missed",
                "duplicates",
                "server CPU %",
                "server RSS MiB",
            ],
            rows,
        )

    def _jobs(self, size: Size) -> int:
        """Jobs firing once a second: a count, or a fraction of the ceiling (rounded up to a
        hundred, so the load is never below that fraction)."""
        if isinstance(size, int):
            return size
        return math.ceil(size * self.ceiling_rate / 100) * 100

    async def rest(self, sizes: list[int] | None = None) -> list[str]:
        rows = []
        for jobs in sizes or self.args.rest:
            loaded = self.dbs.new(f"rest-{jobs}")
            rate = await load_at_rest(jobs, loaded, self.env)

            async def one(jobs: int = jobs, loaded: str = loaded, rate: float = rate) -> AtRest:
                log(f"at rest: {jobs:,} jobs")
                return await at_rest(loaded, jobs, rate, self.args.idle, self.env)

            runs = await repeat(self.args.repeat, one)
            cells = [f"{jobs:,}", f"{rate:,.0f}", f"{med(runs, 'ready_s'):.2f}"]
            cells += [f"{med(runs, 'idle_cpu_percent'):.1f}", f"{med(runs, 'rss_mib'):.0f}"]
            cells += [
                f"{med(runs, n):.1f}"
                for n in ("list_p50_ms", "list_p99_ms", "put_p50_ms", "put_p99_ms")
            ]
            rows.append(row(*cells))
        return table(
            f"### At rest: stored jobs, none due ({self.dbs.label}; idle CPU over "
            f"{self.args.idle:.0f} s)",
            [
                "jobs",
                "bulk load jobs/s",
                "ready s",
                "idle CPU %",
                "RSS MiB",
                "GET /jobs p50 ms",
                "p99 ms",
                "PUT p50 ms",
                "p99 ms",
            ],
            rows,
        )

    async def api(self) -> list[str]:
        log("api")
        api_runs = await repeat(self.args.repeat, lambda: api_writes(self.dbs.new("api"), self.env))
        rows = []
        for index, label in enumerate(("sequential", "32 concurrent")):
            runs: list[ApiRun] = [run[index] for run in api_runs]
            rows.append(
                row(
                    label,
                    f"{med(runs, 'rps'):,.0f}",
                    f"{med(runs, 'p50_ms'):.1f}",
                    f"{med(runs, 'p99_ms'):.1f}",
                )
            )
        return table(
            f"### API: PUT /jobs/{{id}} ({self.dbs.label})",
            ["mode", "req/s", "p50 ms", "p99 ms"],
            rows,
        )

    async def postgres(self) -> list[str]:
        return await self._on_server("postgres")

    async def mariadb(self) -> list[str]:
        return await self._on_server("mariadb")

    async def redis(self) -> list[str]:
        return await self._on_server("redis")

    async def _on_server(self, server: str) -> list[str]:
        """Precision, sustained load, jobs at rest and the API on one replica on a database
        server (the cluster section has 1 against 3 replicas)."""
        admin_url = getattr(self.args, server)
        sqlite, self.dbs = self.dbs, Databases(self.dbs.db_dir, admin_url, SERVER_NAMES[server])
        self.dbs.label += self.workers_label
        try:
            return [
                *await self.precision(),
                *await self.sustained(self.args.pg_sustained),
                *await self.rest(self.args.pg_rest),
                *await self.api(),
            ]
        finally:
            self.dbs.drop_all()
            self.dbs = sqlite

    async def cluster(self) -> list[str]:
        return [line for server in self.args.cluster_on for line in await self._cluster(server)]

    async def _cluster(self, server: str) -> list[str]:
        rows = []
        for count in self.args.replicas:

            async def one(count: int = count) -> ClusterRun:
                return await cluster_run(
                    count,
                    getattr(self.args, server),
                    self.target,
                    self.args.cluster_burst,
                    self.args.cluster_jobs,
                )

            runs = await repeat(self.args.repeat, one)
            cells = [str(count), f"{med(runs, 'burst_delivered'):,.0f}"]
            cells += [f"{med(runs, 'burst_duplicates'):.0f}", f"{med(runs, 'burst_last_s'):.2f}"]
            cells += [f"{med(runs, 'burst_fires_per_s'):,.0f}"]
            cells += [f"{med(runs, 'burst_lag_p99_ms'):.0f}"]
            cells += [f"{med(runs, 'sustained_due_per_s'):,.0f}"]
            cells += [f"{med(runs, 'sustained_fires_per_s'):,.0f}"]
            cells += [f"{med(runs, 'sustained_lag_p99_ms'):.0f}"]
            cells += [f"{med(runs, 'sustained_duplicates'):.0f}"]
            rows.append(row(*cells))
        return table(
            f"### Cluster: replicas on one {SERVER_NAMES[server]} (burst"
            f" {self.args.cluster_burst:,} date "
            f"jobs; sustained {self.args.cluster_jobs:,} jobs at 1 s for 30 s)",
            [
                "replicas",
                "burst delivered",
                "dup",
                "last delivery s",
                "burst fires/s",
                "burst lag p99 ms",
                "sustained due/s",
                "sustained fires/s",
                "sustained lag p99 ms",
                "dup",
            ],
            rows,
        )

    async def wakeup(self) -> list[str]:
        log("wakeup")
        rows = []
        for server in self.args.cluster_on:

            async def one(server: str = server) -> Wakeup:
                return await wakeup(getattr(self.args, server))

            runs = await repeat(self.args.repeat, one)
            cells = [SERVER_NAMES[server], f"{runs[0].changes}"]
            cells += [f"{med(runs, name):.1f}" for name in ("p50_ms", "p99_ms", "max_ms")]
            rows.append(row(*cells))
        return table(
            "### Wake-up: from a change's commit on one node until another hears of it",
            ["database", "changes", "p50 ms", "p99 ms", "max ms"],
            rows,
        )

    async def retention(self) -> list[str]:
        log("retention")
        runs: list[Chunks] = await repeat(self.args.repeat, chunks)
        cells = [f"{runs[0].runs:,}"]
        cells += [
            f"{med(runs, n):.1f}"
            for n in ("trim_nothing_ms", "trim_ms", "window_nothing_ms", "window_full_ms")
        ]
        return table(
            "### Retention: how long one background chunk holds the writer (SQLite, in process)",
            [
                "runs stored",
                "trim 4 jobs, none over ms",
                "trim 4 jobs, 10 % over ms",
                "age window, none old ms",
                "age chunk, 250 deleted ms",
            ],
            [row(*cells)],
        )

    async def claims(self) -> list[str]:
        log("claims")
        rows = []
        stores = self._claim_stores()
        for store, trigger in [(s, t) for s in stores for t in ("date", "interval")]:

            async def one(trigger: str = trigger, store: str = store) -> ClaimRun:
                if store == "SQLite":
                    return await claims(trigger)
                server = next(key for key, name in SERVER_NAMES.items() if name == store)
                admin_url = getattr(self.args, server)
                url = create_server_database(admin_url)
                try:
                    return await claims(trigger, self.args.claims_shared, url=url)
                finally:
                    drop_server_database(admin_url, url)

            runs = await repeat(self.args.repeat, one)
            rows.append(
                row(
                    store,
                    trigger,
                    f"{runs[0].jobs:,}",
                    f"{runs[0].batch}",
                    f"{med(runs, 'cpu_us_per_run'):.1f}",
                    f"{med(runs, 'runs_per_s'):,.0f}",
                )
            )
        return table(
            "### Claims: the store's work per fire, no HTTP (in process; one claimer)",
            ["store", "trigger", "jobs due", "runs per claim", "CPU us per run", "runs/s"],
            rows,
        )

    def _claim_stores(self) -> list[str]:
        """SQLite always; PostgreSQL, MariaDB and Redis when their servers answer."""
        stores = ["SQLite"]
        if pg_reachable(self.args.postgres):
            stores.append("PostgreSQL")
        if mariadb_reachable(self.args.mariadb):
            stores.append("MariaDB")
        if redis_reachable(self.args.redis):
            stores.append("Redis")
        return stores

    async def small(self) -> list[str]:
        rows = []
        for size in self.args.small:

            async def one(size: int = size) -> SmallTarget:
                log(f"small target: {size}")
                return await small_target(size, self.dbs.new("small"), self.env, self.dbs.db_dir)

            runs = await repeat(self.args.repeat, one)
            cells = [f"{size:,}", f"{med(runs, 'delivered'):,.0f}"]
            cells += [f"{med(runs, n):,.0f}" for n in ("duplicates", "failed", "missed")]
            cells += [f"{med(runs, n):.2f}" for n in ("last_delivery_s", "settled_s")]
            rows.append(row(*cells))
        return table(
            "### Small target: N date jobs due at one instant calling a ThreadingHTTPServer "
            f"(listen backlog 5, a thread per connection) ({self.dbs.label})",
            [
                "N",
                "delivered",
                "duplicates",
                "failed",
                "missed",
                "last delivery s",
                "all runs finished s",
            ],
            rows,
        )

    async def mixed(self) -> list[str]:
        slow, fast, window_s = self.args.mixed_slow, self.args.mixed_fast, self.args.window

        async def one() -> Mixed:
            await reset(self.target)
            log(f"mixed targets: {slow} slow jobs, {fast} fast for {window_s:.0f} s")
            db = self.dbs.new("mixed")
            return await mixed_targets(
                slow, fast, window_s, self.target, db, self.env, self.dbs.db_dir
            )

        runs = await repeat(self.args.repeat, one)
        cells = [f"{slow:,}", f"{fast:,}"]
        cells += [f"{med(runs, n):.0f}" for n in ("lag_p50_ms", "lag_p99_ms", "lag_max_ms")]
        cells += [f"{med(runs, 'missed'):,.0f} of {fast * int(window_s):,}"]
        cells += [f"{med(runs, 'slow_per_s'):,.0f}"]
        return table(
            "### Mixed targets: jobs every second calling a slow target (a ThreadingHTTPServer "
            f"answering after 2 s) beside jobs every second calling a fast one, {window_s:.0f} s "
            f"({self.dbs.label})",
            [
                "slow jobs",
                "fast jobs",
                "fast lag p50 ms",
                "p99 ms",
                "max ms",
                "fast fires missed",
                "slow calls/s",
            ],
            [row(*cells)],
        )

    async def python(self) -> list[str]:
        return await python_section(self.args, self.dbs.new, self.dbs.db_dir)


async def main_async(args: argparse.Namespace) -> str:
    target_process, target = start_target()
    lines = [f"Machine: {machine()}", ""]
    try:
        with tempfile.TemporaryDirectory(prefix="kairos-bench-") as tmp:
            bench = Bench(args, target, Path(tmp))
            # The ceiling first: the sustained table states throughput as a fraction of it.
            if {"ceiling", "sustained", "postgres", "mariadb", "redis"} & set(args.only):
                lines += await bench.ceiling()
            for section in SECTIONS.split(","):
                if section in args.only and section != "ceiling":
                    lines += await getattr(bench, section)()
    finally:
        target_process.stop()
    lines.append(SEED_REFERENCE)
    return "\n".join(lines) + "\n"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


Size = int | float
"""Interval jobs of a sustained run: a count, or (from ``60%``) a fraction of the ceiling."""


def _sizes(text: str) -> list[Size]:
    return [float(x[:-1]) / 100 if x.endswith("%") else int(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=SECTIONS, type=lambda s: s.split(","))
    parser.add_argument("--repeat", default=3, type=int)
    parser.add_argument("--window", default=60.0, type=float, help="seconds of ticking load")
    parser.add_argument("--sizes", default="10000,50000", type=_ints, help="burst sizes")
    parser.add_argument(
        "--sustained",
        default="500,1000,2000,4000,50%,60%,70%",
        type=_sizes,
        help="interval jobs; N%% is that fraction of the ceiling measured first",
    )
    parser.add_argument("--rest", default="100000,1000000", type=_ints, help="stored jobs")
    parser.add_argument("--idle", default=30.0, type=float, help="seconds of idle measured")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL database to create the cluster's databases from",
    )
    parser.add_argument(
        "--mariadb",
        default="mariadb://root@127.0.0.1:3306/test",
        help="a MariaDB database to create the MariaDB sections' databases from",
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/0",
        help="the Redis to make the Redis sections' key prefixes on",
    )
    parser.add_argument(
        "--claims-shared", default=5_000, type=int, help="jobs due in the claims on a server"
    )
    parser.add_argument(
        "--pg-sustained", default="1000,2000", type=_sizes, help="also MariaDB's and Redis's"
    )
    parser.add_argument(
        "--pg-rest", default="100000", type=_ints, help="also MariaDB's and Redis's"
    )
    parser.add_argument(
        "--cluster-on",
        default="postgres,mariadb,redis",
        type=lambda s: s.split(","),
        help="servers",
    )
    parser.add_argument("--replicas", default="1,3", type=_ints)
    parser.add_argument("--cluster-burst", default=10_000, type=int)
    parser.add_argument("--cluster-jobs", default=1_000, type=int)
    parser.add_argument("--small", default="1000", type=_ints, help="small-target burst sizes")
    parser.add_argument("--mixed-slow", default=600, type=int, help="jobs calling the slow target")
    parser.add_argument("--mixed-fast", default=10, type=int, help="jobs calling the fast target")
    parser.add_argument(
        "--python-burst", default="10000", type=_ints, help="python-task burst sizes"
    )
    parser.add_argument(
        "--python-rates", default="500,1000,2000,4000", type=_ints, help="python interval jobs"
    )
    parser.add_argument(
        "--python-workers", default="1,4", type=_ints, help="uvicorn workers of the python app"
    )
    parser.add_argument("--concurrency", type=int, help="KAIROS_MAX_CONCURRENT_RUNS")
    parser.add_argument(
        "--http-workers", type=int, help="KAIROS_HTTP_WORKERS (default: as kairos serve chooses)"
    )
    parser.add_argument("--out", default=Path(__file__).with_name("RESULTS.md"), type=Path)
    args = parser.parse_args()
    # uvloop where Kairos runs on it too, so the ceiling is the machine's, not a slower loop's.
    try:
        import uvloop

        report = uvloop.run(main_async(args))
    except ImportError:
        report = asyncio.run(main_async(args))
    print(report)
    args.out.write_text("# Kairos benchmark results\n\n" + report)


if __name__ == "__main__":
    main()
