"""An app of someone else's that embeds Kairos, served by a real uvicorn on a free port.

``host_app(kairos)`` is a FastAPI app with its own route (``GET /hello``) and its own lifespan,
which runs Kairos's inside it; Kairos's API is under ``/scheduler`` and its UI under
``/scheduler/ui``. ``serving(app)`` serves it in the running event loop (async tests);
``serving_in_thread(app)`` in a thread of its own (the browser tests, whose driver blocks).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from tests.support.server import free_port, wait_until

from kairos import Kairos

__all__ = ["PREFIX", "UI", "host_app", "serving", "serving_in_thread"]

PREFIX = "/scheduler"
UI = "/scheduler/ui"


def host_app(kairos: Kairos, *, auth: Any = None, events: list[str] | None = None) -> FastAPI:
    """The host app; ``events`` records its own lifespan's start and end around Kairos's."""
    said = events if events is not None else []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        said.append("host starting")
        async with kairos.lifespan(app):
            said.append("kairos running")
            yield
        said.append("kairos stopped")

    app = FastAPI(lifespan=lifespan)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "from the host"}

    app.include_router(kairos.router(auth=auth), prefix=PREFIX)
    app.mount(UI, kairos.ui())
    return app


def _server(app: FastAPI) -> tuple[uvicorn.Server, str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    return uvicorn.Server(config), f"http://127.0.0.1:{port}"


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """Serve ``app`` (lifespan included) until the block ends; yield its base URL."""
    server, base_url = _server(app)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise AssertionError("the server stopped before it started")
            await asyncio.sleep(0.01)
    try:
        yield base_url
    finally:
        server.should_exit = True
        await task


@contextmanager
def serving_in_thread(app: FastAPI) -> Iterator[str]:
    """``serving`` for blocking callers: the server runs its own loop in a thread."""
    server, base_url = _server(app)
    thread = threading.Thread(target=server.run, name="host-app", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), 20, what="the host app")
    assert server.started, "the host app did not start"
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(20)
