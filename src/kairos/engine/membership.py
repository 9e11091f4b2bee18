"""Cluster membership: this node's heartbeat, and taking over the runs of nodes that died."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AsyncExitStack

from kairos.engine.policies import Planner
from kairos.engine.tasks import in_background
from kairos.errors import StoreUnavailable
from kairos.store import ClaimPolicy, Store

__all__ = ["Membership"]

log = logging.getLogger("kairos.membership")


class Membership:
    """Beats every ``heartbeat_s``; a node silent for ``lease_s`` is dead and its runs are
    interrupted and retried by whichever live node notices first.

    The lease must exceed the heartbeat by enough to ride out a slow beat; detection then takes
    at most ``lease_s + heartbeat_s``.
    """

    def __init__(
        self,
        store: Store,
        *,
        node_id: str,
        hostname: str,
        lease_s: float,
        heartbeat_s: float,
        retries: int,
        on_takeover: Callable[[], None],
        on_store_error: Callable[[str], None] = lambda operation: None,
        tasks: Callable[[], frozenset[str]] = frozenset,
        policy: ClaimPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``monotonic``: seconds from a clock that never goes back, to age this node's last
        beat by (a wall clock set back would make an overdue beat look recent)."""
        self._store = store
        self._node_id = node_id
        self._hostname = hostname
        self._lease_s = lease_s
        self._heartbeat_s = heartbeat_s
        self._retries = retries
        self._on_takeover = on_takeover
        self._on_store_error = on_store_error
        self._tasks = tasks
        self._policy = policy or Planner()
        self._monotonic = monotonic
        self._last_beat: float | None = None
        self.tasks_served: frozenset[str] = frozenset()
        """The python tasks some live node has registered, as of this node's last beat."""

    @property
    def healthy(self) -> bool:
        """True while this node's last heartbeat is recent enough that others see it alive."""
        if self._last_beat is None:
            return False
        return self._monotonic() - self._last_beat < self._lease_s

    async def start(self, stack: AsyncExitStack) -> None:
        """Join the cluster (one beat now, and the runs of nodes found dead taken over), beat
        until ``stack`` closes, then leave it."""
        await self._beat()
        await self._take_over()
        stack.push_async_callback(self._leave)
        in_background(stack, self._loop(), name="kairos-membership")

    async def _leave(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            await self._store.deregister_node(self._node_id)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            try:
                await self._beat()
                await self._take_over()
            except StoreUnavailable as exc:
                self._on_store_error("heartbeat")
                log.warning("heartbeat failed, the store is unavailable: %s", exc)

    async def beat(self) -> None:
        """Beat now, outside the heartbeat's own rhythm."""
        await self._beat()

    async def _beat(self) -> None:
        await self._store.heartbeat(self._node_id, self._hostname, self._tasks())
        self._last_beat = self._monotonic()
        nodes = await self._store.list_nodes()
        self.tasks_served = frozenset().union(*(node.tasks for node in nodes))

    async def _take_over(self) -> None:
        lease_us = int(self._lease_s * 1_000_000)
        dead = await self._store.take_over(lease_us, retries=self._retries, policy=self._policy)
        if dead:
            log.warning("took over the runs of dead nodes: %s", ", ".join(dead))
            self._on_takeover()
