"""SQLite's short operations run on the event loop itself, but never make it wait; hot
statements run straight on the driver."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.exc import IntegrityError

from kairos.models import JobRecord, JobSpec
from kairos.store import Store, store_for_url
from kairos.store.driver import DriverStatement

NOW = 1_800_000_000_000_000
SPEC = JobSpec.model_validate(
    {"trigger": {"type": "interval", "seconds": 60}, "target": {"url": "http://127.0.0.1:9/"}}
)


def record(job_id: str) -> JobRecord:
    return JobRecord(job_id, SPEC, NOW, NOW, NOW, NOW)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[tuple[Store, Path]]:
    path = tmp_path / "kairos.db"
    store = store_for_url(f"sqlite:///{path}")
    await store.open()
    yield store, path
    await store.close()


async def test_a_write_waiting_for_another_process_does_not_hold_the_event_loop(
    db: tuple[Store, Path],
) -> None:
    store, path = db
    other_process = sqlite3.connect(path, isolation_level=None)
    other_process.execute("BEGIN IMMEDIATE")  # holds the write lock, as `kairos users` might
    try:
        started = time.monotonic()
        write = asyncio.create_task(store.insert_job(record("a")))
        done, _ = await asyncio.wait({write}, timeout=0.5)
        # The loop ran on (the wait above ended) while the write waits, in a thread, for the lock.
        assert not done
        assert time.monotonic() - started < 5
    finally:
        other_process.execute("ROLLBACK")
        other_process.close()
    await asyncio.wait_for(write, timeout=30)
    assert (await store.get_job("a")).id == "a"


async def test_short_writes_leave_the_wal_checkpointed(db: tuple[Store, Path]) -> None:
    """Short writes on the loop never checkpoint; every so many go through the writer thread,
    whose commits do, so the log does not grow without end."""
    store, path = db
    for i in range(3000):
        await store.upsert_jobs([record(f"job-{i}")])
    wal = path.with_name(path.name + "-wal")
    pages = wal.stat().st_size // 4096
    # SQLite checkpoints at 1,000 pages; 3,000 commits of a few pages each would be far more.
    assert pages < 2_500, pages


def test_statements_run_on_the_driver_raise_sqlalchemys_errors_and_roll_back(
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/driver.db")
    table = Table("t", MetaData(), Column("k", String, primary_key=True))
    table.metadata.create_all(engine)
    add = DriverStatement(insert(table))
    with engine.begin() as conn:
        add.execute(conn, {"k": "a"})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        add.executemany(conn, [{"k": "b"}, {"k": "a"}])
    with engine.connect() as conn:
        assert conn.execute(select(table.c.k)).scalars().all() == ["a"]
    engine.dispose()
