"""Starting and stopping the engine: every part runs on one exit stack, so a start that fails
halfway stops what it had started, and ``async with Scheduler`` leaves nothing behind."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.engine import EngineOptions, Scheduler
from kairos.executors.guard import OutboundGuard
from kairos.executors.http import HttpExecutor
from kairos.models import RunStatus
from kairos.settings import Settings
from kairos.store import NodeInfo, store_for_url
from kairos.store.sqlite import SQLiteStore
from tests.integration.test_engine import soon, spec, wait_runs
from tests.support.target import RecordingTarget


class WatchedStore(SQLiteStore):
    """A SQLite store that says whether it was closed."""

    closed = False

    async def close(self) -> None:
        await super().close()
        self.closed = True


class FailingExecutor(HttpExecutor):
    """Opens its session, then fails to start (as a worker process that cannot be spawned
    would), noting which engine tasks and store threads were running at that moment."""

    def __init__(self) -> None:
        guard = OutboundGuard(block_private=False)
        super().__init__(
            max_connections=10, response_excerpt_bytes=0, default_timeout_s=5, guard=guard
        )
        self.running_at_start: set[str] = set()
        self.closed = False

    async def start(self) -> None:
        await super().start()
        self.running_at_start = engine_tasks() | {thread.name for thread in store_threads()}
        raise OSError("cannot start the executor")

    async def close(self) -> None:
        await super().close()
        self.closed = True


@pytest.fixture
async def target() -> AsyncIterator[RecordingTarget]:
    async with RecordingTarget() as server:
        yield server


def engine_tasks() -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks() if task.get_name().startswith("kairos")}


def store_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("kairos-w", "kairos-r"))}


async def nodes(url: str) -> list[NodeInfo]:
    store = store_for_url(url)
    await store.open()
    try:
        return await store.list_nodes()
    finally:
        await store.close()


async def test_a_failed_start_stops_what_had_started(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/k.db"
    store, executor = WatchedStore(url), FailingExecutor()
    threads = store_threads()
    with pytest.raises(OSError, match="cannot start the executor"):
        await Scheduler(store, executor, EngineOptions()).start()
    # The heartbeat and the store's writer thread were running when the executor failed.
    assert {"kairos-membership", "kairos-w_0"} <= executor.running_at_start
    assert engine_tasks() == set()
    assert store_threads() == threads
    assert (store.closed, executor.closed) == (True, True)
    assert await nodes(url) == []  # the node left the cluster again


async def test_async_with_starts_the_scheduler_and_stops_it(
    tmp_path: Path, target: RecordingTarget
) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/k.db", shutdown_grace=0.5)
    store = WatchedStore(settings.database_url)
    async with Scheduler.from_settings(settings, store=store) as scheduler:
        await scheduler.create_job("once", spec(target.url("/once"), soon(0.1)))
        runs = await wait_runs(scheduler, "once", lambda r: bool(r) and r[0].finished_us)
        assert runs[0].status is RunStatus.SUCCEEDED
        assert [node.id for node in await store.list_nodes()] == [scheduler.node_id]
        notifiers = {f"kairos-notify-{i}" for i in range(4)}
        parts = {
            "kairos-dispatch",
            "kairos-record",
            "kairos-membership",
            "kairos-retention",
            "kairos-cancels",
        }
        assert engine_tasks() == parts | notifiers
    assert engine_tasks() == set()
    assert store.closed
    assert await nodes(settings.database_url) == []


async def test_stop_without_start_does_nothing(tmp_path: Path) -> None:
    store = WatchedStore(f"sqlite:///{tmp_path}/k.db")
    await Scheduler(store, FailingExecutor()).stop()
    assert not store.closed


def test_an_app_whose_scheduler_fails_to_start_leaves_nothing_open(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/k.db", admin_token="a" * 32)
    store, executor = WatchedStore(settings.database_url), FailingExecutor()
    scheduler = Scheduler.from_settings(settings, store=store, executor=executor)
    with (
        pytest.raises(OSError, match="cannot start the executor"),
        TestClient(create_app(settings, scheduler=scheduler)),
    ):
        pass
    assert "kairos-membership" in executor.running_at_start
    assert (store.closed, executor.closed) == (True, True)


def test_an_app_serves_a_ready_made_scheduler(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/k.db", admin_token="a" * 32)
    store = WatchedStore(settings.database_url)
    scheduler = Scheduler.from_settings(settings, store=store)
    with TestClient(create_app(settings, scheduler=scheduler)) as client:
        assert client.get("/readyz").status_code == 200
        assert client.app.state.scheduler is scheduler  # type: ignore[attr-defined]
        assert not store.closed
    assert store.closed
