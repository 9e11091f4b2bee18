"""``QuietServer``: uvicorn's server, woken by a shutdown signal instead of polling for one."""

from __future__ import annotations

import asyncio
import contextlib
from types import FrameType

import uvicorn

__all__ = ["QuietServer"]


class QuietServer(uvicorn.Server):
    """uvicorn's main loop looks for a shutdown signal ten times a second; this one is woken by
    the signal and otherwise wakes once a second, to refresh the ``Date`` header. Each wake-up
    of an idle process costs CPU on a virtual machine (1-2 ms on a 2-core one): an idle server
    should seldom wake."""

    idle_wake_s = 1.0
    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def main_loop(self) -> None:
        self._wake, self._loop = asyncio.Event(), asyncio.get_running_loop()
        tenths = 0  # uvicorn's tick counter: each 10th refreshes the Date header
        while not await self.on_tick(tenths):
            tenths = (tenths + 10) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_wake_s)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._wake is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to wake
                self._loop.call_soon_threadsafe(self._wake.set)
