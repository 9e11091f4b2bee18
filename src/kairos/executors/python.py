"""``PythonExecutor``: calls python targets, the functions of a ``TaskRegistry``.

Coroutine functions are awaited on the event loop; plain functions run in a pool of at most
``max_threads`` threads, so that a slow one never stalls the schedule. A thread cannot be
stopped from outside: a plain function still running at its timeout is recorded as timed out,
and its thread stays taken, out of the pool's ``max_threads``, until the function returns.
"""

from __future__ import annotations

import asyncio
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from pydantic_core import to_json

from kairos.clock import from_us
from kairos.errors import InvalidField
from kairos.executors.base import Call, Outcome
from kairos.targets import PythonTarget
from kairos.tasks import BoundCall, RunContext, TaskRegistry

__all__ = ["PythonExecutor"]


class PythonExecutor:
    def __init__(
        self,
        registry: TaskRegistry,
        max_threads: int,
        *,
        default_timeout_s: float = 30.0,
        result_excerpt_bytes: int = 4096,
    ) -> None:
        self._registry = registry
        self._max_threads = max_threads
        self._default_timeout_s = default_timeout_s
        self._excerpt_bytes = result_excerpt_bytes
        self._pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        # Threads are made as calls need them, up to ``max_threads``.
        self._pool = ThreadPoolExecutor(self._max_threads, thread_name_prefix="kairos-task")

    async def close(self) -> None:
        """Stop taking calls. Functions still running keep their threads until they return:
        they are not waited for here (the process waits for them when it exits)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    async def execute(self, call: Call) -> Outcome:
        target = call.target
        if not isinstance(target, PythonTarget):
            return Outcome(False, error=f"not a python target: {target.type}", sent=False)
        context = RunContext(call.job_id, call.run_id, from_us(call.scheduled_for_us), call.attempt)
        try:
            bound = self._registry.bind(target, context)
        except InvalidField as exc:
            # Put where this node did not know the task, or before its signature changed.
            return Outcome(False, error=f"not called: {exc.detail}", sent=False)
        timeout_s = target.timeout or self._default_timeout_s
        if call.timeout_s is not None:
            timeout_s = min(timeout_s, call.timeout_s)
        try:
            if bound.task.is_async:
                result = await _awaited(bound, timeout_s)
            else:
                result = await self._threaded(bound, timeout_s)
        except _TimedOut as exc:
            return Outcome(False, error=str(exc), retryable=True)
        except (Exception, SystemExit) as exc:  # a task's sys.exit() must not end the engine
            return Outcome(False, error=_error(exc), detail=self._trace(exc), retryable=True)
        return Outcome(True, detail=self._excerpt(result))

    async def _threaded(self, bound: BoundCall, timeout_s: float) -> object:
        if self._pool is None:
            raise RuntimeError("the executor is not started")
        future: Future[object] = self._pool.submit(bound)
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(asyncio.wrap_future(future))
        except TimeoutError:
            if future.cancel():
                busy = f"all {self._max_threads} task threads were busy"
                raise _TimedOut(
                    f"timed out after {timeout_s:g} s waiting for a thread ({busy})"
                ) from None
            if future.done():
                return future.result()
            raise _TimedOut(
                f"timed out after {timeout_s:g} s (the function goes on in its thread, "
                "which stays taken until it returns)"
            ) from None
        except asyncio.CancelledError:
            future.cancel()
            raise

    def _excerpt(self, result: object) -> str | None:
        """The result as JSON, cut to the excerpt's size; None for None or a value that does
        not serialize to JSON."""
        if result is None or self._excerpt_bytes == 0:
            return None
        try:
            data = to_json(result)
        except ValueError:  # not serializable (PydanticSerializationError), or circular
            return None
        return data[: self._excerpt_bytes].decode("utf-8", errors="ignore")

    def _trace(self, exc: BaseException) -> str | None:
        """The traceback from the task's own frames on, cut to its last lines: they say
        where it failed."""
        if self._excerpt_bytes == 0:
            return None
        trace = "".join(traceback.format_exception(type(exc), exc, _theirs(exc.__traceback__)))
        data = trace.encode()[-self._excerpt_bytes :]
        return data.decode("utf-8", errors="ignore")


class _TimedOut(Exception):
    """The call ran past its timeout."""


async def _awaited(bound: BoundCall, timeout_s: float) -> object:
    try:
        async with asyncio.timeout(timeout_s) as scope:
            return await bound()
    except TimeoutError:
        if scope.expired():
            raise _TimedOut(f"timed out after {timeout_s:g} s") from None
        raise  # the function's own TimeoutError, a failure like any other


def _error(exc: BaseException) -> str:
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _theirs(trace: TracebackType | None) -> TracebackType | None:
    """``trace`` from the task's own frames on: after the frame that called the function (the
    frames before it are Kairos's, asyncio's and the thread pool's), or all of it if there
    is none."""
    start = trace
    while trace is not None:
        if trace.tb_frame.f_code in _CALL_SITES:
            return trace.tb_next
        trace = trace.tb_next
    return start


_CALL_SITES = frozenset({BoundCall.__call__.__code__, _awaited.__code__})
