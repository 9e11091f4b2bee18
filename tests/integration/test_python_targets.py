"""Python function targets end to end: a real scheduler on SQLite calling registered
functions (sync and async, failing, slow), with timeouts, retries, deadlines, max_instances,
the circuit breaker and webhooks as for HTTP targets; and the API taking and showing them."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.engine import Scheduler
from kairos.errors import InvalidField
from kairos.executors.base import Call
from kairos.executors.python import PythonExecutor
from kairos.models import JobSpec, PythonTarget, RunRecord, RunStatus
from kairos.settings import Settings
from kairos.tasks import RunContext, TaskRegistry
from tests.integration.test_engine import done, soon, wait_job, wait_runs
from tests.support.target import RecordingTarget

TOKEN = "k" * 40


class Tasks:
    """The functions the tests' scheduler knows, and what they saw."""

    def __init__(self) -> None:
        self.registry = TaskRegistry()
        self.contexts: list[RunContext] = []
        self.threads: list[str] = []
        self.release = threading.Event()
        """Set to let the stuck sync functions return."""
        self.cancelled = asyncio.Event()
        register = self.registry.task

        @register()
        def add(a: int, b: int, ctx: RunContext) -> dict[str, Any]:
            self.contexts.append(ctx)
            self.threads.append(threading.current_thread().name)
            return {"sum": a + b, "attempt": ctx.attempt}

        @register()
        async def greet(name: str, *, punctuation: str = "!") -> str:
            self.threads.append(threading.current_thread().name)
            return f"hello {name}{punctuation}"

        @register()
        def explode(why: str) -> None:
            raise ValueError(f"cannot go on: {why}")

        @register()
        async def sour() -> None:
            raise KeyError("missing")

        @register()
        def flaky(failures: int, ctx: RunContext) -> str:
            if ctx.attempt <= failures:
                raise ConnectionError(f"attempt {ctx.attempt} failed")
            return "recovered"

        @register()
        def stuck() -> str:
            self.release.wait(30)
            return "released"

        @register()
        async def slow(seconds: float) -> None:
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise

        @register()
        def opaque() -> object:
            return object()


@pytest.fixture
def tasks() -> Iterator[Tasks]:
    made = Tasks()
    yield made
    made.release.set()  # no thread outlives the test


def make_scheduler(tmp_path: Path, tasks: TaskRegistry | None, **settings: Any) -> Scheduler:
    config = Settings(database_url=f"sqlite:///{tmp_path}/k.db", shutdown_grace=0.5, **settings)
    return Scheduler.from_settings(config, tasks=tasks)


@pytest.fixture
async def scheduler(tmp_path: Path, tasks: Tasks) -> AsyncIterator[Scheduler]:
    async with make_scheduler(tmp_path, tasks.registry, task_threads=2) as engine:
        yield engine


def spec(task: str, *args: Any, trigger: Any = None, **extra: Any) -> JobSpec:
    kwargs = extra.pop("kwargs", {})
    target = {"type": "python", "task": task, "args": list(args), "kwargs": kwargs}
    if "timeout" in extra:
        target["timeout"] = extra.pop("timeout")
    return JobSpec.model_validate({"trigger": trigger or soon(0.1), "target": target, **extra})


def call(task: str, *args: Any, kwargs: dict[str, Any] | None = None) -> Call:
    """A call of ``task`` outside any scheduler, as the dispatcher would make it."""
    target = PythonTarget(type="python", task=task, args=list(args), kwargs=kwargs or {})
    return Call("job", 1, 0, 1, target)


async def one_run(scheduler: Scheduler, job_id: str) -> RunRecord:
    runs = await wait_runs(scheduler, job_id, lambda r: len(r) == 1 and done(r))
    return runs[0]


async def test_a_sync_function_runs_in_a_task_thread_with_its_context_and_result(
    scheduler: Scheduler, tasks: Tasks
) -> None:
    job = await scheduler.create_job("sum", spec("add", 2, "3"))
    run = await one_run(scheduler, "sum")
    assert (run.status, run.http_status, run.error) == (RunStatus.SUCCEEDED, None, None)
    assert run.response_excerpt == '{"sum":5,"attempt":1}'
    [context] = tasks.contexts
    assert (context.job_id, context.run_id, context.attempt) == ("sum", run.id, 1)
    assert int(context.scheduled_for.timestamp() * 1_000_000) == job.next_fire_us
    assert tasks.threads[0].startswith("kairos-task")


async def test_an_async_function_runs_on_the_event_loop(scheduler: Scheduler, tasks: Tasks) -> None:
    await scheduler.create_job("hi", spec("greet", kwargs={"name": "ops", "punctuation": "?"}))
    run = await one_run(scheduler, "hi")
    assert (run.status, run.response_excerpt) == (RunStatus.SUCCEEDED, '"hello ops?"')
    assert tasks.threads == [threading.current_thread().name]


async def test_a_result_that_is_not_json_is_not_kept_and_the_run_succeeds(
    scheduler: Scheduler,
) -> None:
    await scheduler.create_job("opaque", spec("opaque"))
    run = await one_run(scheduler, "opaque")
    assert (run.status, run.response_excerpt) == (RunStatus.SUCCEEDED, None)


async def test_an_exception_fails_the_run_with_its_type_message_and_traceback(
    scheduler: Scheduler,
) -> None:
    await scheduler.create_job("boom", spec("explode", "no disk"))
    run = await one_run(scheduler, "boom")
    assert run.status is RunStatus.FAILED
    assert run.error == "ValueError: cannot go on: no disk"
    trace = run.response_excerpt or ""
    assert trace.startswith("Traceback (most recent call last):")
    assert "in explode" in trace
    assert 'raise ValueError(f"cannot go on: {why}")' in trace
    # The function's own frames only: none of Kairos's, asyncio's or the thread pool's.
    assert trace.splitlines()[1].endswith("in explode")
    assert "kairos/" not in trace
    assert "asyncio" not in trace
    assert "concurrent" not in trace


async def test_an_async_functions_exception_is_recorded_from_its_own_frames(
    scheduler: Scheduler,
) -> None:
    await scheduler.create_job("sour", spec("sour"))
    run = await one_run(scheduler, "sour")
    assert (run.status, run.error) == (RunStatus.FAILED, "KeyError: 'missing'")
    trace = run.response_excerpt or ""
    assert trace.splitlines()[1].endswith("in sour")
    assert "kairos/" not in trace


async def test_results_and_tracebacks_are_cut_to_the_excerpt_size(tasks: Tasks) -> None:
    executor = PythonExecutor(tasks.registry, 1, result_excerpt_bytes=10)
    await executor.start()
    try:
        kept = await executor.execute(call("greet", kwargs={"name": "ééééé"}))
        failed = await executor.execute(call("explode", "x" * 100))
    finally:
        await executor.close()
    # '"hello éééééé!"' cut at 10 bytes: never inside a character.
    assert kept.detail == '"hello é'
    assert failed.error == f"ValueError: cannot go on: {'x' * 100}"
    assert failed.detail == "x" * 9 + "\n"  # the traceback's end


async def test_a_function_that_exits_fails_its_run_and_nothing_else(tasks: Tasks) -> None:
    tasks.registry.register("quit", sys.exit)
    executor = PythonExecutor(tasks.registry, 1)
    await executor.start()
    try:
        outcome = await executor.execute(call("quit", 3))
    finally:
        await executor.close()
    assert (outcome.succeeded, outcome.error) == (False, "SystemExit: 3")


async def test_a_failed_call_is_retried_and_each_attempt_knows_its_number(
    scheduler: Scheduler, tasks: Tasks
) -> None:
    retry = {"max_attempts": 4, "initial_delay": 0.05, "jitter": 0}
    await scheduler.create_job("flaky", spec("flaky", 2, retry=retry))
    runs = await wait_runs(
        scheduler, "flaky", lambda r: any(x.status is RunStatus.SUCCEEDED for x in r)
    )
    runs.sort(key=lambda r: r.attempt)
    assert [(r.attempt, r.status) for r in runs] == [
        (1, RunStatus.FAILED),
        (2, RunStatus.FAILED),
        (3, RunStatus.SUCCEEDED),
    ]
    assert [r.error for r in runs] == [
        "ConnectionError: attempt 1 failed",
        "ConnectionError: attempt 2 failed",
        None,
    ]
    assert len({r.scheduled_for_us for r in runs}) == 1


async def test_a_sync_function_past_its_timeout_is_timed_out_and_keeps_its_thread(
    tmp_path: Path, tasks: Tasks
) -> None:
    async with make_scheduler(tmp_path, tasks.registry, task_threads=1) as scheduler:
        await scheduler.create_job("stuck", spec("stuck", timeout=0.2))
        run = await one_run(scheduler, "stuck")
        assert run.status is RunStatus.FAILED
        assert run.error == (
            "timed out after 0.2 s (the function goes on in its thread, "
            "which stays taken until it returns)"
        )
        # The one thread is still taken: the next call waits for it, and times out waiting.
        await scheduler.create_job("next", spec("add", 1, 1, timeout=0.2))
        waiting = await one_run(scheduler, "next")
        assert waiting.error == (
            "timed out after 0.2 s waiting for a thread (all 1 task threads were busy)"
        )
        assert tasks.contexts == []  # never called
        # Once the stuck function returns, its thread takes calls again.
        tasks.release.set()
        await scheduler.create_job("later", spec("add", 1, 1))
        assert (await one_run(scheduler, "later")).status is RunStatus.SUCCEEDED


async def test_an_async_function_past_its_timeout_is_cancelled(
    scheduler: Scheduler, tasks: Tasks
) -> None:
    await scheduler.create_job("slow", spec("slow", 30, timeout=0.2))
    run = await one_run(scheduler, "slow")
    assert (run.status, run.error) == (RunStatus.FAILED, "timed out after 0.2 s")
    assert tasks.cancelled.is_set()


async def test_the_fires_deadline_cuts_a_call_short(scheduler: Scheduler) -> None:
    await scheduler.create_job(
        "late", spec("slow", 30, timeout=20, deadline=0.4, retry={"initial_delay": 0.01})
    )
    runs = await wait_runs(scheduler, "late", done)
    assert [r.attempt for r in runs] == [1]
    assert (runs[0].error or "").startswith("timed out after 0.")


async def test_max_instances_skips_fires_while_a_call_runs(scheduler: Scheduler) -> None:
    every = {"type": "interval", "seconds": 0.1}
    await scheduler.create_job("busy", spec("slow", 0.5, trigger=every, max_instances=1))
    runs = await wait_runs(
        scheduler, "busy", lambda r: any(x.status is RunStatus.SKIPPED for x in r)
    )
    assert any(r.status is RunStatus.RUNNING for r in runs)


async def test_the_breaker_pauses_a_job_whose_function_keeps_failing(
    scheduler: Scheduler,
) -> None:
    every = {"type": "interval", "seconds": 0.1}
    await scheduler.create_job(
        "broken", spec("explode", "always", trigger=every, max_consecutive_failures=2)
    )
    tripped = await wait_job(scheduler, "broken", lambda job: job.pause_reason is not None)
    assert tripped.spec.paused
    assert "after 2 failed fires in a row" in (tripped.pause_reason or "")
    assert "ValueError: cannot go on: always" in (tripped.pause_reason or "")


async def test_a_failed_call_is_told_to_the_failure_webhook(scheduler: Scheduler) -> None:
    async with RecordingTarget() as hook:
        await scheduler.create_job(
            "told", spec("explode", "told", on_failure={"url": hook.url("/failed")})
        )
        [delivery] = await hook.wait_for(1)
    event = json.loads(delivery.body)
    assert (event["event"], event["job"]["id"]) == ("failure", "told")
    assert event["reason"] == "ValueError: cannot go on: told"


async def test_a_node_with_a_registry_refuses_unknown_tasks_and_misfit_arguments(
    scheduler: Scheduler,
) -> None:
    with pytest.raises(InvalidField) as unknown:
        await scheduler.put_job("x", spec("crawl"))
    assert unknown.value.loc == ("target", "task")
    with pytest.raises(InvalidField) as misfit:
        await scheduler.create_job("x", spec("add", 1, kwargs={"b": "two"}))
    assert misfit.value.loc == ("target", "kwargs", "b")
    with pytest.raises(InvalidField) as in_batch:
        await scheduler.put_jobs([("ok", spec("add", 1, 2)), ("bad", spec("add", 1))])
    assert in_batch.value.loc == ("jobs", 1, "target", "kwargs", "b")
    await scheduler.create_job(
        "p", spec("add", 1, 2, trigger={"type": "cron", "expression": "0 0 1 1 *"})
    )
    with pytest.raises(InvalidField) as patched:
        await scheduler.patch_job("p", {"target": {"type": "python", "task": "add", "args": [1]}})
    assert patched.value.loc == ("target", "kwargs", "b")
    assert (await scheduler.patch_job("p", {"description": "kept"})).spec.description == "kept"


async def test_a_job_whose_task_no_node_has_waits_due_until_a_node_with_it_joins(
    tmp_path: Path, tasks: Tasks
) -> None:
    async with make_scheduler(tmp_path, None, heartbeat_interval=0.05) as plain:
        # A node with no registry takes any task name: another node may have it.
        job = await plain.create_job("sum", spec("add", 2, 3))
        assert plain.missing_task(job) == "add"
        assert await plain.jobs_missing_a_task() == {"add": 1}
        async with make_scheduler(tmp_path, tasks.registry, heartbeat_interval=0.05) as worker:
            run = await one_run(plain, "sum")
            assert (run.status, run.node_id) == (RunStatus.SUCCEEDED, worker.node_id)
            assert run.scheduled_for_us == job.next_fire_us  # the fire waited, due
            await plain.membership.beat()  # what its next heartbeat would do
            assert plain.missing_task(job) is None
            assert worker.missing_task(job) is None
            assert await plain.jobs_missing_a_task() == {}


def test_the_api_takes_python_targets_and_shows_them_back(tmp_path: Path, tasks: Tasks) -> None:
    config = Settings(database_url=f"sqlite:///{tmp_path}/api.db", admin_token=TOKEN)
    app = create_app(config, scheduler=Scheduler.from_settings(config, tasks=tasks.registry))
    never = {"type": "cron", "expression": "0 0 1 1 *"}
    target = {"type": "python", "task": "add", "args": [1], "kwargs": {"b": 2}, "timeout": 5}
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        put = client.put("/jobs/sum", json={"trigger": never, "target": target})
        assert put.status_code in (200, 201), put.text
        assert client.get("/jobs/sum").json()["target"] == {**target, "type": "python"}
        assert client.get("/jobs").json()["items"][0]["target"]["task"] == "add"
        shown = client.get("/jobs/sum").json()
        again = {"trigger": shown["trigger"], "target": shown["target"]}
        assert client.put("/jobs/sum", json=again).status_code == 200  # the target round-trips
        bad = client.put(
            "/jobs/bad", json={"trigger": never, "target": {**target, "kwargs": {"b": "x"}}}
        )
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "target", "kwargs", "b"]
        unknown = client.put(
            "/jobs/bad", json={"trigger": never, "target": {**target, "task": "nope"}}
        )
        assert unknown.status_code == 422
        assert unknown.json()["detail"][0]["loc"] == ["body", "target", "task"]
        not_json = client.put(
            "/jobs/bad", json={"trigger": never, "target": {**target, "task": "a b"}}
        )
        assert not_json.status_code == 422
        assert not_json.json()["detail"][0]["loc"] == ["body", "target", "task"]
