"""A real local HTTP target that records every call, for tests.

In process: ``async with RecordingTarget() as target`` and ``await target.wait_for(n)``.
As a process: ``python -m tests.support.target --port N --log FILE`` appends one JSON line per
call (path, headers, body, receive time) to FILE, for end-to-end tests in other processes.

Paths choose the behaviour: ``?status=503`` answers that status, ``?delay=2.5`` waits first,
``?size=100000000`` streams that many bytes of body, ``/drop`` closes the connection unanswered,
``?fail_first=2`` answers 503 to the first two calls to that path and 200 after,
``?retry_after=7`` adds that ``Retry-After`` header, ``?location=URL`` that ``Location`` header
(with ``?status=302``, a redirect).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from aiohttp import web

__all__ = ["Delivery", "RecordingTarget"]

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
        response = web.Response(status=status, text="ok")
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
            entry = {
                "method": delivery.method,
                "path": delivery.path,
                "headers": delivery.headers,
                "body": delivery.body,
                "received_us": delivery.received_us,
            }
            with self._log.open("a") as log:
                log.write(json.dumps(entry) + "\n")
        async with self._changed:
            self.deliveries.append(delivery)
            self._changed.notify_all()


async def _serve(port: int, log: Path) -> None:
    async with RecordingTarget(log, port):
        await asyncio.Event().wait()


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.log))


if __name__ == "__main__":
    _main()
