"""``CancelWatch``: a run cancelled through any node stops on the node that holds it.

The node where ``POST /runs/{id}/cancel`` lands marks the run ``cancelled`` in the store, and
stops it at once if it holds it. Every node also asks the store, once a second while it has runs
in flight, which of them were cancelled elsewhere, and stops those: one indexed read a second,
and none while idle.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from kairos.engine.dispatcher import Dispatcher
from kairos.engine.tasks import in_background
from kairos.errors import StoreUnavailable
from kairos.store import Store

__all__ = ["CancelWatch"]

log = logging.getLogger("kairos.dispatcher")

_EVERY_S = 1.0


class CancelWatch:
    def __init__(self, store: Store, dispatcher: Dispatcher, every_s: float = _EVERY_S) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._every_s = every_s

    async def start(self, stack: AsyncExitStack) -> None:
        """Watch until ``stack`` closes."""
        in_background(stack, self._loop(), name="kairos-cancels")

    async def look(self) -> int:
        """Stop the runs held here that were cancelled; return how many."""
        held = self._dispatcher.runs_held
        if not held:
            return 0
        cancelled = await self._store.cancelled_among(held)
        for run_id in cancelled:
            if self._dispatcher.cancel(run_id):
                log.info("run %d cancelled", run_id)
        return len(cancelled)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._every_s)
            try:
                await self.look()
            except StoreUnavailable as exc:
                log.warning(
                    "cannot see which runs were cancelled, the store is unavailable: %s", exc
                )
