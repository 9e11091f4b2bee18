"""Real local HTTP targets that record every call, for tests.

``RecordingTarget`` is a capable server (aiohttp); ``ThreadedTarget`` a modest one, the standard
library's ``ThreadingHTTPServer`` as it comes.

In process: ``async with RecordingTarget() as target`` and ``await target.wait_for(n)``;
``with ThreadedTarget() as target`` and ``target.deliveries()``.
As a process: ``python -m tests.support.target --port N --log FILE [--threaded]`` appends one
JSON line per call (method, path, headers, body, receive time) to FILE, for end-to-end tests and
the benchmark in other processes.

Paths choose the behaviour: ``?status=503`` answers that status, ``?delay=2.5`` waits first,
``?size=100000000`` streams that many bytes of body, ``/drop`` closes the connection unanswered,
``?fail_first=2`` answers 503 to the first two calls to that path and 200 after,
``?retry_after=7`` adds that ``Retry-After`` header, ``?location=URL`` that ``Location`` header
(with ``?status=302``, a redirect), ``?body=TEXT`` answers that text instead of ``ok``.
``ThreadedTarget`` knows only ``?delay``, ``?status`` and ``?body``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

__all__ = ["Delivery", "RecordingTarget", "ThreadedTarget"]

_CHUNK = b"x" * 65_536


@dataclass(frozen=True)
class Delivery:
    method: str
    path: str
    headers: dict[str, str]
    body: str
    received_us: int


class RecordingTarget:
    def __init__(self, log: Path | None = None, port: int = 0) -> None:
        self.deliveries: list[Delivery] = []
        self.bytes_sent = 0
        self._log = log
        self._port = port
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def wait_for(
        self, condition: int | Callable[[list[Delivery]], bool], deadline_s: float = 10
    ) -> list[Delivery]:
        """Wait until ``condition`` holds (or ``n`` calls arrived); fail after ``deadline_s``."""
        test = (lambda d: len(d) >= condition) if isinstance(condition, int) else condition
        async with asyncio.timeout(deadline_s), self._changed:
            await self._changed.wait_for(lambda: test(self.deliveries))
        return self.deliveries

    async def __aenter__(self) -> RecordingTarget:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        await self._record(
            Delivery(
                request.method,
                request.path,
                dict(request.headers),
                body,
                time.time_ns() // 1000,
            )
        )
        query = request.query
        if "delay" in query:
            await asyncio.sleep(float(query["delay"]))
        if request.path == "/drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        if "size" in query:
            return await self._stream(request, int(query["size"]))
        status = int(query.get("status", "200"))
        if "fail_first" in query:
            calls = sum(1 for d in self.deliveries if d.path == request.path)
            status = 503 if calls <= int(query["fail_first"]) else 200
        response = web.Response(status=status, text=query.get("body", "ok"))
        if "retry_after" in query:
            response.headers["Retry-After"] = query["retry_after"]
        if "location" in query:
            response.headers["Location"] = query["location"]
        if "set_cookie" in query:
            response.set_cookie("session", query["set_cookie"])
        return response

    async def _stream(self, request: web.Request, size: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(size)})
        await response.prepare(request)
        remaining = size
        while remaining > 0:
            chunk = _CHUNK[: min(remaining, len(_CHUNK))]
            await response.write(chunk)
            self.bytes_sent += len(chunk)
            remaining -= len(chunk)
        return response

    async def _record(self, delivery: Delivery) -> None:
        if self._log is not None:
            _append(self._log, delivery)
        async with self._changed:
            self.deliveries.append(delivery)
            self._changed.notify_all()


def _append(log: Path, delivery: Delivery) -> None:
    with log.open("a") as out:
        out.write(json.dumps(asdict(delivery)) + "\n")


class ThreadedTarget:
    """A modest target: ``ThreadingHTTPServer`` with Python's defaults (listen backlog 5, one
    thread per connection, HTTP/1.0: one call per connection), recording every call.

    The socket is bound when the target is made, so ``port`` and ``url`` are known at once, but
    it listens only from ``start()``: until then every call is refused, as by a service that is
    down. Thread safe.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, log: Path | None = None) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._deliveries: list[Delivery] = []
        self.closing = threading.Event()
        """Set on ``stop()``: calls still waiting out their delay end unanswered."""
        self._server = _ThreadedServer((host, port), self)
        self.host, self.port = self._server.server_address[:2]
        self._thread: threading.Thread | None = None

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> ThreadedTarget:
        self._server.server_activate()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.closing.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(10)
        self._server.server_close()

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def record(self, delivery: Delivery) -> None:
        with self._lock:
            self._deliveries.append(delivery)
            if self._log is not None:
                _append(self._log, delivery)

    def __enter__(self) -> ThreadedTarget:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _ThreadedServer(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], target: ThreadedTarget) -> None:
        super().__init__(address, _ThreadedHandler, bind_and_activate=False)
        self.target = target
        try:
            self.server_bind()
        except BaseException:
            self.server_close()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A caller that hung up (its call timed out) is no fault of the target's."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _ThreadedHandler(BaseHTTPRequestHandler):
    server: _ThreadedServer

    def _answer(self) -> None:
        received_us = time.time_ns() // 1000
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace")
        url = urlsplit(self.path)
        headers = dict(self.headers.items())
        target = self.server.target
        target.record(Delivery(self.command, url.path, headers, body, received_us))
        query = parse_qs(url.query)
        delay = query.get("delay")
        if delay and target.closing.wait(float(delay[0])):
            return
        answer = query.get("body", ["ok"])[0].encode()
        self.send_response(int(query.get("status", ["200"])[0]))
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815 (http.server names)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a line per call would bury the tests' output."""


async def _serve(port: int, log: Path) -> None:
    async with RecordingTarget(log, port):
        await asyncio.Event().wait()


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--threaded", action="store_true", help="serve as a ThreadedTarget")
    args = parser.parse_args()
    if args.threaded:
        ThreadedTarget(port=args.port, log=args.log).start()
        threading.Event().wait()
    else:
        asyncio.run(_serve(args.port, args.log))


if __name__ == "__main__":
    _main()
