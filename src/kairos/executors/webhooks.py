"""``WebhookSender``: sends one webhook delivery, a JSON ``POST``, over a small guarded pool.

What is sent, when and how often (the queue, the retries, the signature) is the engine's
notifier's to decide; this is how one attempt goes out and what came of it.
"""

from __future__ import annotations

import aiohttp
from pydantic import AnyHttpUrl

from kairos.executors.base import Outcome
from kairos.executors.guard import GuardedResolver, OutboundGuard, OutboundRefused

__all__ = ["WebhookSender"]

_TIMEOUT = aiohttp.ClientTimeout(total=10)
_RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})


class WebhookSender:
    def __init__(self, guard: OutboundGuard, *, max_connections: int) -> None:
        self._guard = guard
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, resolver=GuardedResolver(self._guard)
        )
        self._session = aiohttp.ClientSession(connector=connector, timeout=_TIMEOUT)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, url: AnyHttpUrl, body: bytes, headers: dict[str, str]) -> Outcome:
        """``POST`` ``body`` to ``url`` once. Never raises for anything the receiver does: a
        failure is an ``Outcome`` whose ``error`` says why and whose ``retryable`` says whether
        another try may fix it. Redirects are not followed (one could lead around the guard)."""
        assert self._session is not None, "start() was not called"
        try:
            self._guard.check_literal(url.host or "")
            async with self._session.post(
                str(url), data=body, headers=headers, allow_redirects=False
            ) as answer:
                status = answer.status
        except OutboundRefused as exc:
            return Outcome(False, error=f"refused: {exc}", sent=False)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            refused = getattr(exc, "os_error", None)
            if isinstance(refused, OutboundRefused):
                return Outcome(False, error=f"refused: {refused}", sent=False)
            return Outcome(False, error=f"{type(exc).__name__}: {exc}", retryable=True)
        if 200 <= status < 300:
            return Outcome(True, code=status)
        problem = f"HTTP {status}"
        if 300 <= status < 400:
            problem += " (redirects are not followed)"
        return Outcome(False, code=status, error=problem, retryable=status in _RETRY_STATUSES)
