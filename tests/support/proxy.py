"""A small real reverse proxy (aiohttp) in a thread of its own: it serves ``prefix`` and what is
under it from an upstream server, as nginx's ``location /scheduler/ { proxy_pass ...; }`` would:
the prefix stripped from the path, the browser's ``Host`` passed on, and ``X-Forwarded-Prefix``,
``-For``, ``-Proto`` and ``-Host`` added. Answers (redirects too) come back as they are: nothing
is rewritten, so the upstream's own URLs must carry the prefix."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import ClientSession, web
from tests.support.server import free_port, wait_until

__all__ = ["prefix_proxy"]

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)


def _app(upstream: str, prefix: str, session: list[ClientSession]) -> web.Application:
    async def forward(request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if path != prefix and not path.startswith(f"{prefix}/"):
            return web.Response(status=404, text="not under the proxy's prefix")
        rest = path[len(prefix) :] or "/"
        query = f"?{request.rel_url.raw_query_string}" if request.rel_url.raw_query_string else ""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers |= {
            "X-Forwarded-Prefix": prefix,
            "X-Forwarded-For": request.remote or "",
            "X-Forwarded-Proto": request.scheme,
            "X-Forwarded-Host": request.host,
        }
        async with session[0].request(
            request.method,
            upstream + rest + query,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
            auto_decompress=False,
        ) as answer:
            body = await answer.read()
            response = web.Response(status=answer.status, body=body)
            for name, value in answer.headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    response.headers.add(name, value)
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


@contextmanager
def prefix_proxy(upstream: str, prefix: str = "/scheduler") -> Iterator[str]:
    """Serve ``upstream`` under ``prefix`` until the block ends; yield the proxy's base URL."""
    port = free_port()
    loop = asyncio.new_event_loop()
    session: list[ClientSession] = []
    runner = web.AppRunner(_app(upstream, prefix, session), access_log=None)
    started = threading.Event()

    async def start() -> None:
        session.append(ClientSession())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="prefix-proxy", daemon=True)
    thread.start()
    wait_until(lambda: started.is_set() or not thread.is_alive(), 20, what="the proxy")
    assert started.is_set(), "the proxy did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:

        async def stop() -> None:
            await runner.cleanup()
            await session[0].close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(20)
        loop.close()
