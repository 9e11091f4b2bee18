"""Cancelling runs on a running engine: a slow HTTP call is aborted, an async python task is
cancelled, on the node that holds the run whichever node was asked; nothing is retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.engine import Scheduler
from kairos.models import JobSpec, RunRecord, RunStatus
from kairos.settings import Settings
from kairos.tasks import TaskRegistry
from tests.integration.test_engine import make_scheduler, soon, spec, wait_runs
from tests.support.target import RecordingTarget

RETRIED = {"retry": {"max_attempts": 3, "initial_delay": 0.1}}


@pytest.fixture
async def target() -> AsyncIterator[RecordingTarget]:
    async with RecordingTarget() as server:
        yield server


async def running_run(scheduler: Scheduler, job_id: str) -> RunRecord:
    runs = await wait_runs(
        scheduler, job_id, lambda r: any(x.status is RunStatus.RUNNING for x in r)
    )
    return next(r for r in runs if r.status is RunStatus.RUNNING)


async def until(condition: Callable[[], bool], deadline_s: float = 10) -> None:
    """Wait, looking every 20 ms, until ``condition`` holds; fail after the deadline."""
    async with asyncio.timeout(deadline_s):
        while not condition():  # noqa: ASYNC110 (engine state: nothing to wait on)
            await asyncio.sleep(0.02)


async def test_a_slow_call_is_aborted_recorded_cancelled_and_not_retried(
    tmp_path: Path, target: RecordingTarget
) -> None:
    async with make_scheduler(tmp_path) as scheduler:
        await scheduler.create_job("slow", spec(target.url("/slow?delay=30"), soon(0.1), **RETRIED))
        run = await running_run(scheduler, "slow")
        cancelled = await scheduler.cancel_run(run.id, actor="ops")
        assert (cancelled.status, cancelled.error) == (RunStatus.CANCELLED, "cancelled by ops")
        await until(lambda: scheduler.runs_in_flight == 0)  # the call was aborted
        await scheduler.get_job("slow")
        runs = await scheduler.list_runs(job_id="slow", limit=10)
        assert [(r.id, r.status) for r in runs] == [(run.id, RunStatus.CANCELLED)]
        assert scheduler.telemetry.fires["cancelled"] == 1


async def test_a_run_held_by_another_node_stops_there_within_seconds(
    tmp_path: Path, target: RecordingTarget
) -> None:
    async with make_scheduler(tmp_path) as holder, make_scheduler(tmp_path) as other:
        await holder.create_job("slow", spec(target.url("/slow?delay=30"), soon(0.1)))
        run = await running_run(holder, "slow")
        asked, holding = (other, holder) if run.node_id == holder.node_id else (holder, other)
        assert run.node_id == holding.node_id
        await asked.cancel_run(run.id)
        await until(lambda: holding.runs_in_flight == 0, deadline_s=5)
        assert (await asked.get_run(run.id)).status is RunStatus.CANCELLED


async def test_an_async_python_task_is_cancelled(tmp_path: Path) -> None:
    tasks = TaskRegistry()
    seen: list[str] = []
    started = asyncio.Event()

    @tasks.task()
    async def wait_forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    config = Settings(database_url=f"sqlite:///{tmp_path}/k.db", shutdown_grace=0.5)
    async with Scheduler.from_settings(config, tasks=tasks) as scheduler:
        target = {"type": "python", "task": "wait_forever"}
        job = JobSpec.model_validate({"trigger": soon(0.1), "target": target})
        await scheduler.create_job("forever", job)
        run = await running_run(scheduler, "forever")
        await asyncio.wait_for(started.wait(), 10)
        await scheduler.cancel_run(run.id)
        await until(lambda: seen == ["cancelled"])


def test_the_api_cancels_and_refuses_what_cannot_be_cancelled(tmp_path: Path) -> None:
    config = Settings(database_url=f"sqlite:///{tmp_path}/k.db", admin_token="t")
    with TestClient(create_app(config), headers={"Authorization": "Bearer t"}) as client:
        never = {"type": "cron", "expression": "0 0 1 1 *"}
        # Nothing listens on port 9: the call is tried again and again within its grace, so
        # the run is queued or running when the cancel comes.
        refused = {"url": "http://127.0.0.1:9/"}
        job = {"trigger": never, "target": refused, "misfire_grace_time": 3600}
        assert client.put("/jobs/p", json=job).status_code == 201
        missing = client.post("/runs/99/cancel")
        assert (missing.status_code, missing.json()["detail"]) == (404, "Run 99 not found")
        run = client.post("/jobs/p/run").json()
        answer = client.post(f"/runs/{run['id']}/cancel")
        assert answer.status_code == 200, answer.text
        assert (answer.json()["status"], answer.json()["error"]) == (
            "cancelled",
            "cancelled by admin-token",
        )
        again = client.post(f"/runs/{run['id']}/cancel")
        assert again.status_code == 409
        assert "only a queued or running run can be cancelled" in again.json()["detail"]
