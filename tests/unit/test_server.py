"""``QuietServer``: uvicorn's main loop, woken by a shutdown signal rather than polling."""

from __future__ import annotations

import asyncio
import signal

import uvicorn

from kairos.api.server import QuietServer


async def test_a_shutdown_signal_ends_the_main_loop_at_once() -> None:
    server = QuietServer(uvicorn.Config(app="kairos.api:create_app"))
    server.idle_wake_s = 3600  # unless the signal wakes it, the loop sleeps for an hour
    main_loop = asyncio.create_task(server.main_loop())
    await asyncio.sleep(0)  # the loop's first turn: its first tick, then it waits
    assert server.server_state.default_headers  # the first tick set the Date header
    assert not main_loop.done()
    server.handle_exit(signal.SIGTERM, None)
    async with asyncio.timeout(10):
        await main_loop
    assert server.should_exit
