"""``WorkerPoolExecutor``: HTTP calls made in worker processes.

One Python process runs one core at most (the GIL): under heavy load, claiming and recording
runs and calling targets compete for it. With ``KAIROS_HTTP_WORKERS=n`` the calls go to ``n``
child processes, each an ``HttpExecutor`` of its own, and the scheduler's process keeps its core
for the schedule. Each call travels as the plain values of its ``Request`` and comes back as
those of its ``Outcome``, over a socket pair per worker (both ends are this same program): the
messages of one turn of the event loop go as one pickled list in one write, as a burst makes
thousands of calls a second and a write or a pickle per call would cost more than the call. A
worker that dies fails the calls it held with a retryable outcome and is started again (after a
pause if it died young). A worker whose scheduler dies, even by SIGKILL, sees its socket close
and leaves.
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
from typing import Any, cast

from kairos.executors.base import Call, Outcome
from kairos.executors.http import HttpExecutor, Request

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

    def __init__(self, process: asyncio.subprocess.Process, default_timeout_s: float) -> None:
        self.process = process
        self.started_at = time.monotonic()
        self.pending: dict[int, asyncio.Future[Outcome]] = {}
        self.alive = True
        self._default_timeout_s = default_timeout_s
        self._ids = itertools.count()
        self._channel: _Channel | None = None
        self._death: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, options: dict[str, Any], on_death: Callable[[_Worker], Awaitable[None]]
    ) -> _Worker:
        # A fresh interpreter on the other end of a socket pair (not multiprocessing: nothing of
        # the program embedding Kairos is imported again); its options are the first frame,
        # written before the loop owns the socket (a few bytes: the socket takes them at once).
        ours, theirs = socket.socketpair()
        entry = "from kairos.executors.workers import worker_main; worker_main()"
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-c", entry, str(theirs.fileno())),
            pass_fds=[theirs.fileno()],
            stdin=asyncio.subprocess.DEVNULL,
        )
        theirs.close()
        ours.sendall(_frame(options))
        worker = cls(process, options["default_timeout_s"])

        def lost() -> None:
            worker._death = asyncio.create_task(worker._die(on_death), name="kairos-http-worker")

        loop = asyncio.get_running_loop()
        _, worker._channel = await loop.create_connection(
            lambda: _Channel(worker._answered, lost), sock=ours
        )
        return worker

    @property
    def exitcode(self) -> int | None:
        return self.process.returncode

    async def execute(self, call: Call) -> Outcome:
        if not self.alive or self._channel is None:  # it died; its replacement is on its way
            return Outcome(False, error=_LOST, retryable=True)
        request = Request.of(call, self._default_timeout_s)
        if isinstance(request, Outcome):
            return request
        call_id = next(self._ids)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        try:
            self._channel.send((call_id, *request))
            return await future
        finally:
            self.pending.pop(call_id, None)

    async def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._death is not None:
            self._death.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._death

    def _answered(self, message: tuple[Any, ...]) -> None:
        future = self.pending.get(message[0])
        if future is not None and not future.done():
            future.set_result(_outcome(message))

    async def _die(self, on_death: Callable[[_Worker], Awaitable[None]]) -> None:
        self.alive = False
        for future in self.pending.values():
            if not future.done():
                future.set_result(Outcome(False, error=_LOST, retryable=True))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), 5)
        await on_death(self)


class _Channel(asyncio.Protocol):
    """Messages over a socket pair, both ways. What is sent during one turn of the event loop
    goes as one frame (a length, then the pickled list of messages) in one write."""

    def __init__(self, on_message: Callable[[Any], None], on_lost: Callable[[], None]) -> None:
        self._on_message = on_message
        self._on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._received = bytearray()
        self._outbox: list[Any] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()

    def send(self, message: Any) -> None:
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(message)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        received = self._received
        received += data
        start = 0
        while len(received) - start >= _HEADER.size:
            (size,) = _HEADER.unpack_from(received, start)
            end = start + _HEADER.size + size
            if end > len(received):
                break
            for message in pickle.loads(received[start + _HEADER.size : end]):
                self._on_message(message)
            start = end
        del received[:start]

    def _flush(self) -> None:
        batch, self._outbox = self._outbox, []
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_frame(batch))


def _frame(value: object) -> bytes:
    payload = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


def _outcome_message(call_id: int, outcome: Outcome) -> tuple[Any, ...]:
    o = outcome
    return (
        call_id,
        o.succeeded,
        o.code,
        o.error,
        o.detail,
        o.retryable,
        o.retry_after_s,
        o.sent,
        o.overloaded,
        o.closed,
    )


def _outcome(message: tuple[Any, ...]) -> Outcome:
    _, succeeded, code, error, detail, retryable, retry_after_s, sent, overloaded, closed = message
    return Outcome(
        succeeded, code, error, detail, retryable, retry_after_s, sent, overloaded, closed
    )


# The worker process ------------------------------------------------------------------------------


def worker_main() -> None:
    """The worker process: the file descriptor of its socket is its one argument."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        pass
    with contextlib.suppress(KeyboardInterrupt, EOFError):
        options = pickle.loads(_receive(sock, _HEADER.unpack(_receive(sock, _HEADER.size))[0]))
        asyncio.run(_serve(sock, HttpExecutor(**options)))


def _receive(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise EOFError("the scheduler closed its end")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


async def _serve(sock: socket.socket, executor: HttpExecutor) -> None:
    await executor.start()
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    calls: set[asyncio.Task[None]] = set()

    async def answer(message: tuple[Any, ...]) -> None:
        call_id, *fields = message
        try:
            outcome = await executor.send(Request(*fields))
        except Exception as exc:  # a bug must not leave the scheduler waiting for ever
            outcome = Outcome(False, error=f"internal error: {exc!r}")
        channel.send(_outcome_message(call_id, outcome))

    def called(message: tuple[Any, ...]) -> None:
        task = loop.create_task(answer(message))
        calls.add(task)
        task.add_done_callback(calls.discard)

    def lost() -> None:  # the scheduler closed its end, or died: make no more calls, leave
        if not closed.done():
            closed.set_result(None)

    _, channel = await loop.create_connection(lambda: _Channel(called, lost), sock=sock)
    try:
        await closed
    finally:
        for task in calls:
            task.cancel()
        await executor.close()
