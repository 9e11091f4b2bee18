"""The schema the migrations build is exactly the one the code declares, on every backend."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import ClauseElement, Connection, Engine, create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

import kairos.store
from kairos.models import RunStatus
from kairos.store import store_for_url
from kairos.store.mariadb import url_for_driver
from kairos.store.schema import metadata
from tests.support.databases import SQL_BACKENDS, new_sql_database

MIGRATIONS = Path(kairos.store.__file__).parent / "migrations"


@pytest.fixture(params=SQL_BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with new_sql_database(request.param, tmp_path) as url:
        yield url


def _schema_diff(url: str) -> list[object]:
    engine, _ = _connect(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": partial(_declared_for, conn.dialect.name)}
        )
        diff: list[object] = compare_metadata(context, metadata)
    engine.dispose()
    return diff


def _declared_for(dialect: str, item: Any, name: Any, kind: str, reflected: bool, *_: Any) -> bool:
    """Whether the schema declares ``item`` on ``dialect``: an object made on one backend only
    (``ddl_if``) is not missing from the others."""
    only = getattr(item, "_ddl_if", None)
    return reflected or only is None or only.dialect in (None, dialect)


async def test_migrated_schema_equals_the_models(fresh_url: str) -> None:
    store = store_for_url(fresh_url)
    await store.open()
    await store.close()
    assert _schema_diff(fresh_url) == []


async def test_replicas_starting_together_migrate_once(fresh_url: str) -> None:
    stores = [store_for_url(fresh_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    for store in stores:
        await store.close()
    again = store_for_url(fresh_url)
    await again.open()
    await again.close()
    assert _schema_diff(fresh_url) == []


async def test_runs_are_indexed_by_status_only_while_queued_or_running(fresh_url: str) -> None:
    """The partial indexes the dispatcher reads, with the predicates the schema declares."""
    store = store_for_url(fresh_url)
    await store.open()
    await store.close()
    if make_url(fresh_url).drivername == "mariadb":
        _assert_full_run_indexes(fresh_url)
        return
    parsed = make_url(fresh_url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'kairos_runs'"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'kairos_runs' AND sql != ''"
    engine = create_engine(parsed)
    with engine.connect() as conn:
        # PostgreSQL reads back ``((status)::text = 'running'::text)``
        definitions = {
            name: re.sub(r"::text|[()]", "", " ".join(sql.split()))
            for name, sql in conn.exec_driver_sql(query)
        }
    engine.dispose()
    assert definitions["ix_kairos_runs_queued_due_us"].endswith("WHERE status = 'scheduled'")
    assert definitions["ix_kairos_runs_running_job_id"].endswith("WHERE status = 'running'")
    assert not [name for name in definitions if "status_due_us" in name or "node_id_status" in name]


def _assert_full_run_indexes(url: str) -> None:
    """MariaDB has no partial indexes: the same two, over every run, and not the older ones."""
    engine, _ = _connect(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SHOW INDEX FROM kairos_runs").all()
    engine.dispose()
    columns: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda row: (row.Key_name, row.Seq_in_index)):
        columns.setdefault(row.Key_name, []).append(row.Column_name)
    assert columns["ix_kairos_runs_queued_due_us"] == ["due_us"]
    assert columns["ix_kairos_runs_running_job_id"] == ["job_id", "node_id"]
    assert not [name for name in columns if "status_due_us" in name or "node_id_status" in name]


def _connect(url: str) -> tuple[Engine, bool]:
    """An engine on a migrated test database, and whether it is PostgreSQL."""
    parsed = make_url(url)
    postgres = parsed.drivername == "postgresql"
    if postgres:
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "mariadb":
        parsed = url_for_driver(parsed)
    return create_engine(parsed), postgres


def _plan(conn: Connection, query: ClauseElement, values: dict[str, Any], name: str) -> list[str]:
    """The plan of ``query``; on PostgreSQL the generic plan of a prepared statement (what
    psycopg runs for frequent queries), which does not look at parameter values. The tables are
    empty, so sequential scans are turned off: otherwise they always win."""
    if conn.dialect.name == "mysql":
        # One line per table read: its access type, the index chosen, and how it is used.
        state = query.compile(dialect=conn.dialect).construct_expanded_state(values)
        explain = conn.exec_driver_sql(f"EXPLAIN {state.statement}", state.positional_parameters)
        return [f"{row.table} {row.type} {row.key} {row.Extra}" for row in explain]
    if conn.dialect.name != "postgresql":
        state = query.compile(dialect=conn.dialect).construct_expanded_state(values)
        explain = f"EXPLAIN QUERY PLAN {state.statement}"
        return [row[-1] for row in conn.exec_driver_sql(explain, state.positional_parameters)]
    dialect = postgresql.psycopg.dialect(paramstyle="numeric_dollar")
    state = query.compile(dialect=dialect).construct_expanded_state(values)
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql("SET enable_seqscan = off")
    conn.exec_driver_sql(f"PREPARE {name} AS {state.statement}")
    args = ", ".join(repr(v) for v in state.positional_parameters)
    execute = f"EXECUTE {name}({args})" if args else f"EXECUTE {name}"
    return [row[0] for row in conn.exec_driver_sql(f"EXPLAIN {execute}")]


async def test_the_dispatchers_queries_read_the_partial_indexes(fresh_url: str) -> None:
    """A planner only picks a partial index when the query's own text implies its predicate:
    a bound ``status`` would read the whole history in a generic plan."""
    from kairos.store import sql
    from kairos.store.sql import ledger

    store = store_for_url(fresh_url)
    await store.open()
    await store.close()
    assert isinstance(store, sql.SqlStore)
    statements = {
        "ix_kairos_runs_queued_due_us": [store._due_pending.statement, ledger.NEXT_RUN_DUE],
        "ix_kairos_runs_running_job_id": [ledger.RUNNING_COUNTS],
    }
    values = {"due_by": 1, "limit": 5, "now": 1, "ids": ["a", "b"], "node": "n"}
    engine, _ = _connect(fresh_url)
    with engine.connect() as conn:
        for index, queries in statements.items():
            for n, query in enumerate(queries):
                plan = _plan(conn, query, values, f"q{n}{index[-2:]}")
                # MariaDB may read the queued runs off its index by status: as few rows.
                read = (index, "ix_kairos_runs_status" if conn.dialect.name == "mysql" else index)
                assert any(name in line for line in plan for name in read), (query, plan)
    engine.dispose()


async def test_a_search_by_id_prefix_reads_a_range_of_the_primary_key(fresh_url: str) -> None:
    """Also in a prepared statement's generic plan, which cannot use a ``LIKE`` pattern's
    prefix; the range is a prefix only where job ids compare bytewise, whatever the locale."""
    from sqlalchemy import select

    from kairos.store import JobQuery, sql
    from kairos.store.schema import jobs
    from kairos.store.sql.jobs import job_filter

    store = store_for_url(fresh_url)
    await store.open()
    await store.close()
    assert isinstance(store, sql.SqlStore)
    conditions = job_filter(JobQuery(prefix="etl."))
    query = select(jobs.c.id).where(*conditions).order_by(jobs.c.id).limit(100)
    engine, postgres = _connect(fresh_url)
    with engine.connect() as conn:
        plan = _plan(conn, query, {}, "by_prefix")
        if postgres:
            collations = conn.exec_driver_sql(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns"
                " WHERE (table_name, column_name) IN (('kairos_jobs', 'id'),"
                " ('kairos_job_tags', 'job_id'), ('kairos_runs', 'job_id'))"
            ).all()
            assert sorted(row[2] for row in collations) == ["C", "C", "C"], collations
            assert any("Index Cond" in line and "id >=" in line for line in plan), plan
        elif conn.dialect.name == "mysql":
            collations = conn.exec_driver_sql(
                "SELECT table_name, column_name, collation_name FROM information_schema.columns"
                " WHERE table_schema = DATABASE() AND (table_name, column_name) IN"
                " (('kairos_jobs', 'id'), ('kairos_job_tags', 'job_id'), ('kairos_runs', 'job_id'))"
            ).all()
            assert sorted(row[2] for row in collations) == ["utf8mb4_bin"] * 3, collations
            assert plan == ["kairos_jobs range PRIMARY Using where; Using index"], plan
        else:
            assert any("id>? AND id<?" in line for line in plan), plan
    engine.dispose()


async def test_the_run_summaries_are_built_from_the_runs_a_store_had_before_them(
    fresh_url: str,
) -> None:
    """A store migrated up to 0011 holds runs; upgrading to 0012 fills the summaries from them:
    each job's counts and last call, and the recent minutes' counts."""
    engine, _ = _connect(fresh_url)
    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, "0011")
    now_us = time.time_ns() // 1000
    old_us = now_us - 3 * 86_400 * 1_000_000  # ended before the minutes kept
    runs = [  # in the order they were made, as their ids say
        # job, status, finished_us
        ("a", "succeeded", old_us),
        ("b", "failed", old_us),
        ("a", "succeeded", now_us - 50_000_000),
        ("a", "failed", now_us - 40_000_000),
        ("b", "missed", now_us - 30_000_000),  # not a call: b's last call stays the failure
        ("b", "running", None),
        ("c", "cancelled", now_us - 20_000_000),
        ("gone", "failed", now_us - 10_000_000),  # a job deleted since: not failing now
    ]
    with engine.begin() as conn:
        for job_id in ("a", "b", "c"):
            conn.execute(
                text(
                    "INSERT INTO kairos_jobs (id, spec, paused, created_us, updated_us)"
                    " VALUES (:id, '{}', :paused, 1, 1)"
                ),
                {"id": job_id, "paused": False},
            )
        for index, (job_id, status, finished_us) in enumerate(runs, start=1):
            conn.execute(
                text(
                    "INSERT INTO kairos_runs (id, job_id, scheduled_for_us, attempt, status,"
                    " manual, node_id, finished_us) VALUES (:id, :job, :at, 1, :status,"
                    " :manual, 'n1', :finished)"
                ),
                {
                    "id": index,
                    "job": job_id,
                    "at": index,
                    "status": status,
                    "manual": False,
                    "finished": finished_us,
                },
            )
    engine.dispose()

    store = store_for_url(fresh_url)
    await store.open()
    try:
        counts = await store.job_run_counts(["a", "b", "c"])
        summary = await store.run_summary([now_us - 3600 * 1_000_000], 10)
    finally:
        await store.close()
    a, b, c = counts["a"], counts["b"], counts["c"]
    assert (a.counts[RunStatus.SUCCEEDED], a.counts[RunStatus.FAILED]) == (2, 1)
    assert (a.last_status, a.last_ended_us) == (RunStatus.FAILED, now_us - 40_000_000)
    assert (b.counts[RunStatus.FAILED], b.counts[RunStatus.MISSED]) == (1, 1)
    assert (b.last_status, b.last_ended_us) == (RunStatus.FAILED, old_us)
    assert c.counts[RunStatus.CANCELLED] == 1
    assert c.last_status is None
    last_hour = summary.ended[0]
    assert {status: n for status, n in last_hour.items() if n} == {
        RunStatus.SUCCEEDED: 1,
        RunStatus.FAILED: 2,
        RunStatus.MISSED: 1,
        RunStatus.CANCELLED: 1,
    }
    assert last_hour[RunStatus.FAILED] == 2  # the deleted job's run ended all the same
    assert summary.running == 1
    assert (summary.failing, sorted(summary.failing_jobs)) == (2, ["a", "b"])


async def test_the_runs_in_flight_and_queued_are_counted_off_an_index(fresh_url: str) -> None:
    """The overview's and the cluster page's counts: a range of an index, never the history."""
    from kairos.store.sql import nodes, stats

    store = store_for_url(fresh_url)
    await store.open()
    await store.close()
    engine, postgres = _connect(fresh_url)
    with engine.connect() as conn:
        queries = [stats._COUNT_RUNNING, stats._COUNT_QUEUED, nodes._RUNNING_BY_NODE]
        for n, query in enumerate(queries):
            plan = _plan(conn, query, {}, f"count{n}")
            if postgres:
                assert not any("Seq Scan" in line for line in plan), plan
            elif conn.dialect.name == "mysql":
                assert all(" ref ix_kairos_runs_status " in line for line in plan), plan
            else:  # SQLite: a scan of a partial index reads only the runs it holds
                reads = [line for line in plan if line.startswith(("SCAN", "SEARCH"))]
                assert all("USING" in line and "INDEX" in line for line in reads), plan
    engine.dispose()
