"""The dispatch loop on the memory store, a clock moved by hand and an executor in memory.

The loop sleeps in real time for as long as the clock says the next fire is away; the tests
move the clock and wake the loop, so none waits for time to pass but the shutdown grace.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kairos.clock import from_us, to_us
from kairos.engine.dispatcher import Dispatcher
from kairos.engine.options import EngineOptions
from kairos.engine.policies import Planner
from kairos.errors import StoreUnavailable
from kairos.executors.base import Outcome
from kairos.models import JobRecord, JobSpec, RunRecord, RunStatus
from kairos.store import Claim, ClaimPolicy, FinishedRun
from kairos.store.memory import MemoryStore
from tests.support.fakes import FakeClock, FakeExecutor, eventually

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NODE = "node-1"


def at(seconds: float) -> int:
    """The time ``seconds`` after ``START``, in epoch microseconds."""
    return to_us(START) + round(seconds * 1_000_000)


class WatchedStore(MemoryStore):
    """The memory store, keeping each claim it answered; while ``down``, claims fail as they
    do when the database is out of reach."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[tuple[int, int, Claim]] = []
        """(now_us, limit, claim) of each claim answered."""
        self.refused = 0
        self.down = False
        self.finish_gate: asyncio.Event | None = None
        """While set to an unset event, outcomes written apart from a claim wait on it before
        they are written: a write still in progress."""
        self.finishing = 0
        """Such writes waiting now."""

    async def finish_runs(self, node_id: str, finished: Sequence[FinishedRun]) -> dict[int, str]:
        if self.finish_gate is not None:
            self.finishing += 1
            try:
                await self.finish_gate.wait()
            finally:
                self.finishing -= 1
        return await super().finish_runs(node_id, finished)

    async def claim_due(
        self,
        now_us: int,
        limit: int,
        node_id: str,
        policy: ClaimPolicy,
        *,
        ahead_us: int = 0,
        finished: Sequence[FinishedRun] = (),
    ) -> Claim:
        if self.down:
            self.refused += 1
            raise StoreUnavailable("the database is out of reach")
        claim = await super().claim_due(
            now_us, limit, node_id, policy, ahead_us=ahead_us, finished=finished
        )
        self.claims.append((now_us, limit, claim))
        return claim

    def claimed_at(self, now_us: int) -> Claim | None:
        """The last claim made at ``now_us``, if any was."""
        made = [claim for when, _, claim in self.claims if when == now_us]
        return made[-1] if made else None

    async def runs(self, job_id: str) -> list[RunRecord]:
        """The job's runs, oldest first."""
        newest = await self.list_runs(job_id=job_id, status=None, before_id=None, limit=100)
        return newest[::-1]

    async def count(self, status: RunStatus, expected: int) -> bool:
        """Whether exactly ``expected`` runs, of any job, have ``status``."""
        runs = await self.list_runs(job_id=None, status=status, before_id=None, limit=100)
        return len(runs) == expected

    async def has_run(self, job_id: str, attempt: int, status: RunStatus) -> bool:
        runs = await self.runs(job_id)
        return any(run.attempt == attempt and run.status is status for run in runs)


@dataclass
class Engine:
    dispatcher: Dispatcher
    store: WatchedStore
    clock: FakeClock
    executor: FakeExecutor

    def move_to(self, seconds: float) -> None:
        """Set the clock ``seconds`` after ``START`` and have the loop look at the store."""
        self.clock.advance((at(seconds) - self.clock.now_us()) / 1_000_000)
        self.dispatcher.wake()


def job(job_id: str, due_s: float, **spec: Any) -> JobRecord:
    """A one-off job due ``due_s`` after ``START``, calling a python function."""
    due_us = at(due_s)
    trigger = {"type": "date", "run_date": from_us(due_us).isoformat()}
    target = {"type": "python", "task": "work"}
    parsed = JobSpec.model_validate({"trigger": trigger, "target": target, **spec})
    return JobRecord(job_id, parsed, due_us, due_us, at(-60), at(-60))


@asynccontextmanager
async def running(
    *jobs: JobRecord, executor: FakeExecutor | None = None, **options: Any
) -> AsyncIterator[Engine]:
    """A dispatcher over ``jobs``, its clock at ``START``, stopped on leaving. Unless woken,
    it looks at the store again only after an hour of real time."""
    store = WatchedStore()
    await store.open()
    await store.heartbeat(NODE, "host", frozenset({"work"}))  # the node has the jobs' task
    for record in jobs:
        await store.insert_job(record)
    clock = FakeClock(START)
    executor = executor or FakeExecutor()
    dispatcher = Dispatcher(
        store=store,
        executor=executor,
        planner=Planner(),
        clock=clock,
        node_id=NODE,
        options=EngineOptions(**{"max_poll_s": 3600.0, **options}),
    )
    async with AsyncExitStack() as stack:
        await dispatcher.start(stack)
        yield Engine(dispatcher, store, clock, executor)


async def test_a_due_fire_is_called_once_and_recorded_succeeded() -> None:
    async with running(job("report", due_s=10)) as engine:
        engine.move_to(10)
        await eventually(lambda: engine.store.has_run("report", 1, RunStatus.SUCCEEDED), "success")
        [run] = await engine.store.runs("report")
        [call] = engine.executor.calls
        assert (call.job_id, call.run_id, call.scheduled_for_us, call.attempt) == (
            "report",
            run.id,
            at(10),
            1,
        )
        assert (run.started_us, run.finished_us, run.http_status) == (at(10), at(10), 200)
        assert engine.dispatcher.telemetry.fires == {"succeeded": 1}


async def test_a_fire_not_yet_due_is_not_called() -> None:
    async with running(job("report", due_s=10)) as engine:
        engine.move_to(9)
        await eventually(lambda: engine.store.claimed_at(at(9)) is not None, "a claim at 9 s")
        assert engine.executor.calls == []
        assert (await engine.store.get_job("report")).next_run_us == at(10)


async def test_a_retryable_failure_is_called_again_at_the_retry_policys_time() -> None:
    failed = Outcome(False, code=503, error="HTTP 503", retryable=True)
    retry = {"max_attempts": 3, "initial_delay": 5, "jitter": 0}
    async with running(job("sync", due_s=1, retry=retry), executor=FakeExecutor(failed)) as engine:
        engine.move_to(1)
        await eventually(lambda: engine.store.has_run("sync", 2, RunStatus.SCHEDULED), "a retry")
        first, second = await engine.store.runs("sync")
        assert (first.status, first.http_status, first.error) == (
            RunStatus.FAILED,
            503,
            "HTTP 503",
        )
        assert (second.scheduled_for_us, second.due_us) == (at(1), at(6))

        engine.move_to(5.9)
        await eventually(lambda: engine.store.claimed_at(at(5.9)) is not None, "a claim at 5.9 s")
        assert len(engine.executor.calls) == 1

        engine.move_to(6)
        await eventually(lambda: engine.store.has_run("sync", 2, RunStatus.SUCCEEDED), "success")
        [_, call] = engine.executor.calls
        assert (call.run_id, call.scheduled_for_us, call.attempt) == (second.id, at(1), 2)


async def test_a_revoked_run_claimed_ahead_is_recorded_skipped_and_never_called() -> None:
    async with running(job("report", due_s=0.5), claim_ahead_s=1.0) as engine:
        engine.move_to(0)
        # Revoke takes effect once the run, claimed ahead, waits for its due time.
        await eventually(lambda: engine.dispatcher.revoke("report"), "a run claimed ahead")
        await engine.dispatcher.flush()

        engine.move_to(1)
        await eventually(lambda: engine.dispatcher.in_flight == 0, "the run to end")
        assert engine.executor.calls == []
        [run] = await engine.store.runs("report")
        assert (run.status, run.started_us, run.error) == (
            RunStatus.SKIPPED,
            None,
            "the job was changed before this run started",
        )


async def test_max_concurrent_caps_the_calls_in_flight() -> None:
    executor = FakeExecutor()
    executor.gate = gate = asyncio.Event()
    jobs = [job(f"job-{n}", due_s=1) for n in range(5)]
    async with running(*jobs, executor=executor, max_concurrent=2) as engine:
        engine.move_to(1)
        await eventually(lambda: executor.in_flight == 2, "two calls in flight")
        [(_, limit, claim)] = engine.store.claims
        assert (limit, len(claim.started), claim.exhausted) == (2, 2, True)

        gate.set()
        await eventually(lambda: engine.store.count(RunStatus.SUCCEEDED, 5), "five successes")
        assert executor.peak == 2
        assert all(limit <= 2 for _, limit, _ in engine.store.claims)


async def test_calls_still_running_after_the_shutdown_grace_are_recorded_interrupted() -> None:
    executor = FakeExecutor()
    executor.gate = asyncio.Event()
    async with AsyncExitStack() as outer:
        engine = await outer.enter_async_context(
            running(job("slow", due_s=1), executor=executor, shutdown_grace_s=0.2)
        )
        engine.move_to(1)
        await eventually(lambda: executor.in_flight == 1, "the call in flight")
        began = time.monotonic()
    assert time.monotonic() - began >= 0.2
    assert executor.cancelled == executor.calls
    first, retry = await engine.store.runs("slow")
    assert first.status is RunStatus.INTERRUPTED
    assert (retry.attempt, retry.status) == (2, RunStatus.SCHEDULED)


async def test_the_loop_survives_a_store_outage_and_resumes_its_work() -> None:
    async with running(job("report", due_s=1)) as engine:
        engine.store.down = True
        engine.move_to(1)
        await eventually(lambda: engine.store.refused >= 1, "a refused claim")
        engine.dispatcher.wake()
        await eventually(lambda: engine.store.refused >= 2, "a second refused claim")
        assert engine.executor.calls == []
        assert engine.dispatcher.telemetry.store_errors["claim"] >= 2

        engine.store.down = False
        engine.dispatcher.wake()
        await eventually(lambda: engine.store.has_run("report", 1, RunStatus.SUCCEEDED), "success")
        assert [call.job_id for call in engine.executor.calls] == ["report"]


async def test_a_claim_waits_for_outcomes_being_written_so_it_counts_their_runs_as_ended() -> None:
    """A fire due while its job's last outcome is still being written (after an outage, say,
    when the writes resume) is called, not skipped for ``max_instances``."""
    trigger = {"type": "interval", "seconds": 1, "start_date": START.isoformat()}
    spec = JobSpec.model_validate(
        {"trigger": trigger, "target": {"type": "python", "task": "work"}}
    )
    ticking = JobRecord("tick", spec, at(1), at(1), at(-60), at(-60))
    async with running(ticking) as engine:
        engine.store.finish_gate = gate = asyncio.Event()
        engine.move_to(1)
        await eventually(lambda: engine.store.finishing == 1, "the first outcome being written")

        engine.move_to(2)
        await asyncio.sleep(0.05)  # room for a claim that does not wait (it would skip the fire)
        gate.set()
        await eventually(lambda: engine.store.count(RunStatus.SUCCEEDED, 2), "both fires called")
        runs = await engine.store.runs("tick")
        assert [(run.scheduled_for_us, run.status) for run in runs] == [
            (at(1), RunStatus.SUCCEEDED),
            (at(2), RunStatus.SUCCEEDED),
        ]
