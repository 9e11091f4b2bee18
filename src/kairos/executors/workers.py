"""``WorkerPoolExecutor``: HTTP calls made in worker processes.

One Python process runs one core at most (the GIL): under heavy load, claiming and recording
runs and calling targets compete for it. With ``KAIROS_HTTP_WORKERS=n`` the calls go to ``n``
child processes, each an ``HttpExecutor`` of its own, and the scheduler's process keeps its core
for the schedule. Calls and outcomes travel as length-prefixed pickles over a socket pair per
worker (both ends are this same program). A worker that dies fails the calls it held with a
retryable outcome and is started again (after a pause if it died young). A worker whose
scheduler dies, even by SIGKILL, sees its socket close and leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import socket
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kairos.executors.base import Call, Outcome
from kairos.executors.http import HttpExecutor

__all__ = ["WorkerPoolExecutor", "worker_main"]

log = logging.getLogger("kairos.workers")

_HEADER = struct.Struct("!I")
_LOST = "the worker process making the call stopped before it finished"
# A worker that dies this soon after it started is started again only after a pause, doubling
# up to the longest: a worker that cannot start must not be restarted in a tight loop.
_SHORT_LIFE_S = 10.0
_FIRST_PAUSE_S = 0.5
_LONGEST_PAUSE_S = 30.0


class WorkerPoolExecutor:
    def __init__(self, workers: int, http_options: dict[str, Any]) -> None:
        """``http_options``: the keyword arguments of each worker's ``HttpExecutor``."""
        self._size = workers
        self._options = http_options
        self._workers: list[_Worker] = []
        self._closing = False
        self._pause_s = 0.0

    async def start(self) -> None:
        self._workers = [await self._start_one() for _ in range(self._size)]

    async def close(self) -> None:
        self._closing = True
        await asyncio.gather(*(worker.close() for worker in self._workers))
        self._workers = []

    async def execute(self, call: Call) -> Outcome:
        # The least busy live worker: calls that hang do not pile up behind one another.
        worker = min(self._workers, key=lambda w: (not w.alive, len(w.pending)))
        return await worker.execute(call)

    async def _start_one(self) -> _Worker:
        return await _Worker.start(self._options, self._replace)

    async def _replace(self, dead: _Worker) -> None:
        if self._closing or dead not in self._workers:
            return
        young = time.monotonic() - dead.started_at < _SHORT_LIFE_S
        self._pause_s = (
            min(_LONGEST_PAUSE_S, max(_FIRST_PAUSE_S, self._pause_s * 2)) if young else 0
        )
        log.warning(
            "an HTTP worker process stopped (exit code %s); starting another in %.1f s",
            dead.exitcode,
            self._pause_s,
        )
        await asyncio.sleep(self._pause_s)
        if not self._closing and dead in self._workers:
            self._workers[self._workers.index(dead)] = await self._start_one()


class _Worker:
    """The scheduler's side of one worker process."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.process = process
        self.started_at = time.monotonic()
        self.pending: dict[int, asyncio.Future[Outcome]] = {}
        self.alive = True
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count()
        self._listening: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, options: dict[str, Any], on_death: Callable[[_Worker], Awaitable[None]]
    ) -> _Worker:
        # A fresh interpreter on the other end of a socket pair (not multiprocessing: nothing of
        # the program embedding Kairos is imported again); its options are the first frame.
        ours, theirs = socket.socketpair()
        entry = "from kairos.executors.workers import worker_main; worker_main()"
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", entry, str(theirs.fileno())),
            pass_fds=[theirs.fileno()],
            stdin=asyncio.subprocess.DEVNULL,
        )
        theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        worker = cls(process, reader, writer)
        worker._send(pickle.dumps(options, pickle.HIGHEST_PROTOCOL))
        worker._listening = asyncio.create_task(worker._listen(on_death), name="kairos-http-worker")
        return worker

    @property
    def exitcode(self) -> int | None:
        return self.process.returncode

    async def execute(self, call: Call) -> Outcome:
        if not self.alive:  # it died and its replacement is on its way
            return Outcome(False, error=_LOST, retryable=True)
        call_id = next(self._ids)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        try:
            self._send(pickle.dumps((call_id, call), pickle.HIGHEST_PROTOCOL))
            return await future
        finally:
            self.pending.pop(call_id, None)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    def _send(self, payload: bytes) -> None:
        self._writer.write(_HEADER.pack(len(payload)) + payload)

    async def _listen(self, on_death: Callable[[_Worker], Awaitable[None]]) -> None:
        try:
            while True:
                call_id, outcome = pickle.loads(await _read_frame(self._reader))
                future = self.pending.get(call_id)
                if future is not None and not future.done():
                    future.set_result(outcome)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker is gone
        self.alive = False
        for future in self.pending.values():
            if not future.done():
                future.set_result(Outcome(False, error=_LOST, retryable=True))
        self._writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 5)
        await on_death(self)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return await reader.readexactly(size)


# The worker process ------------------------------------------------------------------------------


def worker_main() -> None:
    """The worker process: the file descriptor of its socket is its one argument."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(sock))


async def _serve(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_connection(sock=sock)
    executor = HttpExecutor(**pickle.loads(await _read_frame(reader)))
    await executor.start()
    calls: set[asyncio.Task[None]] = set()

    async def answer(call_id: int, call: Call) -> None:
        outcome = await executor.execute(call)
        payload = pickle.dumps((call_id, outcome), pickle.HIGHEST_PROTOCOL)
        writer.write(_HEADER.pack(len(payload)) + payload)

    try:
        while True:
            call_id, call = pickle.loads(await _read_frame(reader))
            task = asyncio.create_task(answer(call_id, call))
            calls.add(task)
            task.add_done_callback(calls.discard)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # the scheduler closed its end, or died: make no more calls, leave
    finally:
        for task in calls:
            task.cancel()
        await executor.close()
