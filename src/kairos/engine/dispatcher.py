"""The dispatch loop: claim due work, call targets, record outcomes in batches.

claim -> (policies decide missed / skipped / start, inside the claim transaction) -> call target
-> classify outcome -> record (batched) -> the next claim sees the job's schedule already advanced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import TypeVar

from kairos.clock import Clock
from kairos.engine import policies
from kairos.engine.aftermath import Aftermath
from kairos.engine.hosts import NoSlot, Signal
from kairos.engine.notifier import Event
from kairos.engine.options import EngineOptions
from kairos.engine.policies import Planner
from kairos.engine.secrets import UnresolvableReference
from kairos.engine.tasks import cancelled
from kairos.engine.telemetry import Telemetry
from kairos.errors import StoreUnavailable
from kairos.executors.base import Call, Executor, Outcome
from kairos.logs import run_fields
from kairos.models import HttpTarget, JobSpec, RunStatus, TargetSpec
from kairos.store import FinishedRun, StartedRun, Store

__all__ = ["Dispatcher"]

log = logging.getLogger("kairos.dispatcher")
_T = TypeVar("_T")

_STORE_RETRY_S = 1.0
_LOOKING = sys.maxsize
# The loop wakes this fraction of the claim-ahead window before the next fire: time for the
# claim itself, while the rest of the window gathers the fires that follow into the same claim.
_WAKE_LEAD = 0.2
# How long an outcome may wait to be written with others (run history lags by as much).
_RECORD_LINGER_S = 0.01
_CHANGED = "the job was changed before this run started"
# A call that never left is tried again after this long, doubling up to the longest, each wait
# moved at random by half of itself so that calls refused together do not return together.
_CONNECT_RETRY_FIRST_S = 0.1
_CONNECT_RETRY_LONGEST_S = 2.0
# Runs waiting for a slot at their target's host leave their place under ``max_concurrent`` to
# other targets' runs, up to this many times ``max_concurrent``: more would let claims run far
# ahead of the calls they feed (a burst to one host claimed whole before its calls are made).
_PARKED_PER_SLOT = 1


class Dispatcher:
    """Runs due fires of every job in the store, at most ``max_concurrent`` at a time."""

    def __init__(
        self,
        *,
        store: Store,
        executor: Executor,
        planner: Planner,
        clock: Clock,
        node_id: str,
        options: EngineOptions,
        on_fire_end: Callable[[str, JobSpec], None] = lambda job_id, spec: None,
        notify: Callable[[Event], None] = lambda event: None,
        telemetry: Telemetry | None = None,
        resolve: Callable[[TargetSpec], Awaitable[TargetSpec]] | None = None,
    ) -> None:
        """``resolve``: a target holding references with their values in place (see
        ``Secrets.resolved``); None: targets are called as they are stored."""
        self._store = store
        self._resolve = resolve
        self._executor = executor
        self._planner = planner
        self._clock = clock
        self._node_id = node_id
        self._max_concurrent = options.max_concurrent
        self._claim_batch = options.claim_batch
        self._ahead_us = int(options.claim_ahead_s * 1_000_000)
        self._lead_us = int(self._ahead_us * _WAKE_LEAD)
        self._max_poll_s = options.max_poll_s
        self._interrupted_retries = options.interrupted_retries
        self._grace_s = options.shutdown_grace_s
        self._aftermath = Aftermath(planner, notify=notify, on_fire_end=on_fire_end)
        self.telemetry = telemetry or Telemetry()
        self.hosts = options.host_gates()
        self._default_timeout_s = options.default_timeout_s
        self._parked = 0
        """Runs waiting for a slot at their host, or to try connecting again."""
        self._wake = asyncio.Event()
        self._planned_wake_us = _LOOKING
        """When the loop means to look at the store next; ``_LOOKING`` while it looks, when a
        change may have been missed by the look under way, so any change must wake it."""
        self._capacity = asyncio.Event()
        self._results: list[FinishedRun] = []
        self._results_ready = asyncio.Event()
        self._writing_results = asyncio.Lock()
        """Held while outcomes are being written apart from a claim: a claim waits for them, or
        it could count their runs as still in flight (and skip a fire for ``max_instances``)."""
        self._in_flight: set[asyncio.Task[None]] = set()
        self._by_run: dict[int, asyncio.Task[None]] = {}
        """The task of each run in flight here, by run id (for ``cancel``)."""
        self._slot_awaited = False
        """The last claim left queued runs waiting for a run of their job to finish."""
        self._waiting: dict[str, dict[int, asyncio.Event]] = {}
        """Runs claimed ahead and waiting for their due time, by job id and run id; setting a
        run's event revokes it."""
        self._loop_task: asyncio.Task[None] | None = None
        self._flush_task: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def parked(self) -> int:
        return self._parked

    def wake(self, due_us: int | None = None) -> None:
        """Look at the store now, if work falls due (at ``due_us``; None: now) before the
        loop would look anyway. A job that only got later or went away needs no wake-up."""
        if due_us is None or due_us - self._lead_us < self._planned_wake_us:
            self._wake.set()

    def revoke(self, job_id: str) -> bool:
        """The job was changed or deleted: runs of it claimed ahead and still waiting for their
        due time are not called but recorded as ``skipped``. Return whether there were any
        (``flush`` writes them at once)."""
        waiting = self._waiting.pop(job_id, {})
        now_us = self._clock.now_us()
        for run_id, revoked in waiting.items():
            revoked.set()
            self._record(FinishedRun(run_id, RunStatus.SKIPPED, None, now_us, error=_CHANGED))
            self.telemetry.ended(RunStatus.SKIPPED, None)
        return bool(waiting)

    async def flush(self) -> None:
        """Write the outcomes recorded so far now, without waiting for the next batch."""
        await self._flush()

    async def start(self, stack: AsyncExitStack) -> None:
        """Claim and call until ``stack`` closes; then stop as ``_stop`` says."""
        self._loop_task = asyncio.create_task(self._loop(), name="kairos-dispatch")
        self._flush_task = asyncio.create_task(self._flush_loop(), name="kairos-record")
        stack.push_async_callback(self._stop)

    async def _stop(self) -> None:
        """Stop claiming, give running calls the shutdown grace to finish, record what
        finished. Calls still running after the grace are cancelled and recorded as
        interrupted."""
        await cancelled(self._loop_task)
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=self._grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await cancelled(self._flush_task)
        try:
            await self._flush()
            await self._store.interrupt_running(
                self._node_id, retries=self._interrupted_retries, policy=self._planner
            )
        except StoreUnavailable as exc:
            # Stopping must not fail for it: the runs left running are taken over by the other
            # nodes (or this one, restarted) when its lease runs out.
            log.warning("could not record this node's runs at stop: %s", exc)

    # The loop ----------------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            # Cleared before looking, so a change made while we look wakes the next wait.
            self._wake.clear()
            try:
                timeout = await self._dispatch_once()
            except StoreUnavailable as exc:
                self.telemetry.store_error("claim")
                log.warning("store unavailable, retrying in %.0f s: %s", _STORE_RETRY_S, exc)
                timeout = _STORE_RETRY_S
            except Exception:  # a fault must not end every job's schedule for good, silently
                log.exception("dispatch failed, retrying in %.0f s", _STORE_RETRY_S)
                timeout = _STORE_RETRY_S
            if timeout == 0:
                continue
            self._planned_wake_us = self._clock.now_us() + int(timeout * 1_000_000)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            self._planned_wake_us = _LOOKING

    async def _dispatch_once(self) -> float:
        """Claim and start what is due; return how long to sleep before looking again."""
        parked = min(self._parked, self._max_concurrent * _PARKED_PER_SLOT)
        free = self._max_concurrent - len(self._in_flight) + parked
        if free <= 0:
            self._capacity.clear()
            await self._capacity.wait()
            return 0
        async with self._writing_results:
            now_us = self._clock.now_us()
            # Outcomes not yet written go with the claim: max_instances counts must see them.
            finished, self._results = self._results, []
            try:
                claim = await self._store.claim_due(
                    now_us,
                    min(free, self._claim_batch),
                    self._node_id,
                    self._planner,
                    ahead_us=self._ahead_us,
                    finished=finished,
                )
            except BaseException:
                self._results = finished + self._results
                raise
        self._aftermath.written(finished, claim.paused)
        self.telemetry.claimed(len(claim.started), claim.recorded)
        self._slot_awaited = claim.waiting_for_slot
        for started in claim.started:
            self._spawn(started)
        if claim.exhausted:
            return 0
        if claim.next_due_us is None:
            return self._max_poll_s
        # Woken a lead ahead of the next fire, to claim it early; but a fire this pass left
        # inside the window (its job is busy) is looked at again at its due time itself.
        now_us = self._clock.now_us()
        left = claim.next_due_us <= now_us + self._ahead_us and not claim.started
        lead_us = 0 if left else self._lead_us
        wait_s = (claim.next_due_us - lead_us - now_us) / 1_000_000
        return min(max(wait_s, 0.0), self._max_poll_s)

    @property
    def runs_held(self) -> list[int]:
        """The ids of the runs in flight here."""
        return list(self._by_run)

    def cancel(self, run_id: int) -> bool:
        """Stop the run's call if it is in flight here (the store already says ``cancelled``:
        nothing more is recorded); return whether it was."""
        task = self._by_run.pop(run_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    def _spawn(self, started: StartedRun) -> None:
        run_id = started.run.id
        task = asyncio.create_task(self._execute(started))
        self._in_flight.add(task)
        self._by_run[run_id] = task
        task.add_done_callback(lambda done: self._on_done(done, run_id))

    def _on_done(self, task: asyncio.Task[None], run_id: int) -> None:
        self._in_flight.discard(task)
        if self._by_run.get(run_id) is task:
            del self._by_run[run_id]
        self._capacity.set()

    # One run -----------------------------------------------------------------------------------

    async def _execute(self, started: StartedRun) -> None:
        run, job = started.run, started.job
        if not await self._until_due(started):
            return  # revoked: ``revoke`` recorded it
        result = await self._call(started)
        if result is None:
            return  # not called: ``_call`` recorded why
        outcome, started_us = result
        finished_us = self._clock.now_us()
        retry_due_us = None
        if outcome.retryable:
            retry_due_us = policies.retry_due_us(
                job.spec, run.attempt, run.scheduled_for_us, finished_us, outcome.retry_after_s
            )
        status = RunStatus.SUCCEEDED if outcome.succeeded else RunStatus.FAILED
        self.telemetry.ended(status, (finished_us - started_us) / 1_000_000)
        verdict = self._aftermath.ended(started, outcome, finished_us, retry_due_us)
        self._record(
            FinishedRun(
                run.id,
                status,
                started_us,
                finished_us,
                outcome.code,
                _storable(outcome.error),
                _storable(outcome.detail),
                retry_due_us,
                verdict,
            )
        )
        if not outcome.succeeded:
            log.info(
                "run failed: %s%s",
                outcome.error,
                ""
                if retry_due_us is None
                else f"; retrying in {(retry_due_us - finished_us) / 1e6:.3f} s",
                extra=run_fields(*_identity(started)),
            )

    async def _call(self, started: StartedRun) -> tuple[Outcome, int] | None:
        """Call the run's target once it has a slot at its host (an HTTP target's: only
        those have a host to be polite to); try again while the call never left (the target
        cannot have seen it), until the fire's misfire grace or deadline is spent. Return the
        outcome and when the call began, or None when the run was recorded without a call (no
        slot in time, or its deadline passed)."""
        run, spec = started.run, started.job.spec
        target = spec.target
        host = target if isinstance(target, HttpTarget) else None
        key = "" if host is None else host.host_key
        give_up_us = self._give_up_us(started)
        connects = 0
        while True:
            slot_s = await self._host_slot(started, host, key, give_up_us)
            if slot_s is None:
                return None
            started_us = self._clock.now_us()
            if not connects:
                self.telemetry.started((started_us - started.due_us) / 1_000_000)
            time_left = policies.time_left_s(spec, run.scheduled_for_us, started_us)
            if time_left is not None and time_left <= 0:
                if host is not None:
                    self.hosts.release(key, slot_s, Signal.NEUTRAL)
                error = f"the fire's deadline ({spec.deadline:g} s) passed before this attempt"
                self._not_called(started, RunStatus.FAILED, error, failed=True)
                return None
            outcome = await self._call_once(started, time_left, host, key, slot_s)
            if outcome.sent or not outcome.retryable or host is None:
                return outcome, started_us
            connects += 1
            self.hosts.host(key).connect_retries += 1
            self.hosts.host(key).last_error = outcome.error
            delay_s = min(_CONNECT_RETRY_LONGEST_S, _CONNECT_RETRY_FIRST_S * 2 ** (connects - 1))
            delay_s *= random.uniform(0.5, 1.5)
            now_us = self._clock.now_us()
            if give_up_us is None or now_us + int(delay_s * 1e6) >= give_up_us:
                tried = f"{connects} connection attempts in {(now_us - started.due_us) / 1e6:.1f} s"
                error = f"{outcome.error} ({tried}; the request was never sent)"
                return replace(outcome, error=error), started_us
            await self._parked_while(asyncio.sleep(delay_s))

    async def _host_slot(
        self, started: StartedRun, host: HttpTarget | None, key: str, give_up_us: int | None
    ) -> float | None:
        """Take a slot at the host of an HTTP target; return when the call may start
        (``monotonic``; 0 for a target without a host), or None when no slot came free in time
        and the run was recorded as missed."""
        if host is None:
            return 0.0
        try:
            return await self._parked_while(
                self.hosts.acquire(
                    key,
                    max_concurrency=host.max_concurrency,
                    max_per_second=host.max_per_second,
                    timeout_s=_seconds_until(give_up_us, self._clock.now_us()),
                )
            )
        except NoSlot:
            self._not_called(started, RunStatus.MISSED, self._no_slot(key))
            return None

    async def _call_once(
        self,
        started: StartedRun,
        time_left: float | None,
        host: HttpTarget | None,
        key: str,
        slot_s: float,
    ) -> Outcome:
        run, job = started.run, started.job
        target = job.spec.target
        signal = Signal.NEUTRAL
        try:
            # Only a target that holds references pays for resolving them: the flag is the
            # spec's, computed once.
            if target.templates and self._resolve is not None:
                target = await self._resolve(target)
            call = Call(job.id, run.id, run.scheduled_for_us, run.attempt, target, time_left)
            outcome = await self._executor.execute(call)
        except UnresolvableReference as exc:
            # Not sent, but not worth retrying either: a failure the breaker counts.
            outcome = Outcome(False, error=f"not called: {exc.detail}")
        except Exception as exc:  # an executor bug must not leave the run "running" forever
            log.exception("executor failed", extra=run_fields(*_identity(started)))
            outcome = Outcome(False, error=f"internal error: {exc!r}")
        else:
            signal = _signal(outcome)
        finally:
            if host is not None:
                self.hosts.release(key, slot_s, signal, host.url.path or "")
        return outcome

    async def _parked_while(self, waiting: Awaitable[_T]) -> _T:
        """Await ``waiting`` without holding a place under ``max_concurrent``."""
        self._parked += 1
        self._capacity.set()
        try:
            return await waiting
        finally:
            self._parked -= 1

    def _give_up_us(self, started: StartedRun) -> int | None:
        """When a run still not called is given up: its misfire grace after it fell due, or
        its fire's deadline; with neither, the call's own timeout."""
        spec, run = started.job.spec, started.run
        ends = []
        if spec.misfire_grace_time is not None:
            ends.append(started.due_us + int(spec.misfire_grace_time * 1_000_000))
        if spec.deadline is not None:
            ends.append(run.scheduled_for_us + int(spec.deadline * 1_000_000))
        if not ends:
            timeout_s = spec.target.timeout or self._default_timeout_s
            ends.append(started.due_us + int(timeout_s * 1_000_000))
        return min(ends)

    def _no_slot(self, key: str) -> str:
        host = self.hosts.host(key)
        return (
            f"not called: {key} had no free slot in time ({host.in_flight} calls in flight, "
            f"limit {int(host.limit)}, {len(host.waiters)} waiting)"
        )

    def _not_called(
        self, started: StartedRun, status: RunStatus, error: str, *, failed: bool = False
    ) -> None:
        run = started.run
        now_us = self._clock.now_us()
        verdict = None
        if failed:
            verdict = self._aftermath.ended(started, Outcome(False, error=error), now_us, None)
        else:
            self._aftermath.not_called(started)
        self._record(FinishedRun(run.id, status, None, now_us, error=error, verdict=verdict))
        self.telemetry.ended(status, None)
        log.info("run %s: %s", status.value, error, extra=run_fields(*_identity(started)))

    async def _until_due(self, started: StartedRun) -> bool:
        """Wait for the due time of a run claimed ahead; False at once if its job changes."""
        run_id, job_id = started.run.id, started.job.id
        if started.due_us <= self._clock.now_us():
            return True
        revoked = asyncio.Event()
        self._waiting.setdefault(job_id, {})[run_id] = revoked
        try:
            # A loop: a coarse timer may wake us a little early.
            while (early_us := started.due_us - self._clock.now_us()) > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(early_us / 1_000_000):
                        await revoked.wait()
                if revoked.is_set():
                    return False
        finally:
            waiting = self._waiting.get(job_id)
            if waiting is not None:
                waiting.pop(run_id, None)
                if not waiting:
                    del self._waiting[job_id]
        return True

    # Recording, batched ------------------------------------------------------------------------

    def _record(self, finished: FinishedRun) -> None:
        self._results.append(finished)
        self._results_ready.set()

    async def _flush_loop(self) -> None:
        # Outcomes that arrive while one batch is being written, or within the linger after
        # the first of a batch, are written together: one transaction for many runs.
        while True:
            await self._results_ready.wait()
            await asyncio.sleep(_RECORD_LINGER_S)
            self._results_ready.clear()
            try:
                await self._flush()
            except StoreUnavailable as exc:
                self.telemetry.store_error("record")
                log.warning("could not record run outcomes, retrying: %s", exc)
                self._results_ready.set()
                await asyncio.sleep(_STORE_RETRY_S)

    async def _flush(self) -> None:
        async with self._writing_results:
            batch, self._results = self._results, []
            if not batch:
                return
            try:
                paused = await self._store.finish_runs(self._node_id, batch)
            except BaseException:
                self._results = batch + self._results
                raise
        self._aftermath.written(batch, paused)
        if self._slot_awaited:
            self._wake.set()  # a run finished: a queued run of its job may start now
        retries = [f.retry_due_us for f in batch if f.retry_due_us is not None]
        if retries:
            self.wake(min(retries))


def _signal(outcome: Outcome) -> int:
    """What an outcome says of its host's load (a slow answer is judged by ``HostGates``)."""
    if not outcome.sent:
        return Signal.OVERLOAD if outcome.retryable else Signal.NEUTRAL
    if outcome.overloaded:
        return Signal.OVERLOAD
    return Signal.OK_CLOSING if outcome.closed else Signal.OK


def _seconds_until(end_us: int | None, now_us: int) -> float | None:
    return None if end_us is None else max(0.0, (end_us - now_us) / 1_000_000)


def _identity(started: StartedRun) -> tuple[str, int, int, int]:
    run = started.run
    return run.job_id, run.id, run.scheduled_for_us, run.attempt


def _storable(text: str | None) -> str | None:
    """``text`` with its NUL characters shown as U+FFFD, as undecodable bytes are: PostgreSQL
    refuses NUL in text, and a target's answer (or an exception's message) may hold one."""
    return text.replace("\x00", "\ufffd") if text is not None and "\x00" in text else text
