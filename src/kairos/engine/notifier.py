"""Webhook notifications: a failed fire, a job the circuit breaker paused.

Each event is a JSON ``POST`` to the job's webhook and to the server's, sent from a queue by a
few workers, so the dispatcher never waits on a receiver. A delivery is retried a few times
with backoff on errors another try may fix, then dropped with a log line; when the queue is
full, new events are dropped the same way. Redirects are not followed (a 3xx is a failed
delivery): one could lead around the outbound guard. With a secret, the receiver can check the
``X-Kairos-Signature`` header: ``sha256=`` and the hex HMAC-SHA256, under the secret, of
``<X-Kairos-Timestamp>.<body>``; the timestamp lets it refuse replays.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import orjson

from kairos import __version__
from kairos.clock import from_us
from kairos.engine.tasks import in_background
from kairos.errors import KairosError
from kairos.executors.guard import OutboundGuard
from kairos.executors.webhooks import WebhookSender
from kairos.models import JobRecord, Webhook

__all__ = ["Event", "Notifier"]

log = logging.getLogger("kairos.notifier")

_QUEUE_SIZE = 10_000
_WORKERS = 4


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    """``failure`` or ``pause``."""
    job: JobRecord
    run: dict[str, Any]
    """The run it is about: id, scheduled_for, attempt, status, http_status, error."""
    reason: str


class Notifier:
    def __init__(
        self,
        guard: OutboundGuard,
        *,
        on_failure: Webhook | None = None,
        on_pause: Webhook | None = None,
        retry_delays_s: tuple[float, ...] = (1.0, 4.0, 15.0),
        resolve: Callable[[Webhook], Awaitable[Webhook]] | None = None,
    ) -> None:
        """``resolve``: a webhook whose secret holds references with their values in place
        (``Secrets.resolved_webhook``)."""
        self._resolve = resolve
        self._sender = WebhookSender(guard, max_connections=_WORKERS)
        self._server_hooks = {"failure": on_failure, "pause": on_pause}
        self._delays = retry_delays_s
        self._queue: asyncio.Queue[tuple[Webhook, bytes, str, dict[str, Any]]] = asyncio.Queue(
            _QUEUE_SIZE
        )

    async def start(self, stack: AsyncExitStack) -> None:
        """Deliver in the background until ``stack`` closes (events still queued are dropped)."""
        stack.push_async_callback(self._sender.close)
        await self._sender.start()
        for i in range(_WORKERS):
            in_background(stack, self._work(), name=f"kairos-notify-{i}")

    def notify(self, event: Event) -> None:
        """Queue the event for the job's webhook and the server's; never waits."""
        job_hook = event.job.spec.on_failure if event.kind == "failure" else event.job.spec.on_pause
        hooks = [hook for hook in (job_hook, self._server_hooks[event.kind]) if hook is not None]
        if not hooks:
            return
        body = orjson.dumps(
            {
                "event": event.kind,
                "job": {"id": event.job.id, "description": event.job.spec.description},
                "run": event.run,
                "reason": event.reason,
                "sent_at": from_us(time.time_ns() // 1000).isoformat(),
            }
        )
        # The run it is about, for the log lines (see ``kairos.logs``).
        fields = {"job_id": event.job.id} | {
            field: event.run[key]
            for field, key in (
                ("run_id", "id"),
                ("scheduled_for", "scheduled_for"),
                ("attempt", "attempt"),
            )
            if key in event.run
        }
        for hook in hooks:
            try:
                self._queue.put_nowait((hook, body, event.kind, fields))
            except asyncio.QueueFull:
                log.warning("notification %s dropped, the queue is full", event.kind, extra=fields)

    async def _work(self) -> None:
        while True:
            hook, body, kind, fields = await self._queue.get()
            try:
                await self._deliver(hook, body, kind, fields)
            finally:
                self._queue.task_done()

    async def _deliver(self, hook: Webhook, body: bytes, kind: str, fields: dict[str, Any]) -> None:
        delivery = str(uuid.uuid4())
        if hook.templates and self._resolve is not None:
            try:
                hook = await self._resolve(hook)
            except KairosError as exc:  # names the reference, never a value
                shown = hook.masked().url
                log.warning(
                    "notification %s to %s not sent: %s", kind, shown, exc.detail, extra=fields
                )
                return
        for attempt in range(len(self._delays) + 1):
            if attempt:
                await asyncio.sleep(self._delays[attempt - 1])
            outcome = await self._sender.send(hook.url, body, _headers(hook, body, kind, delivery))
            if outcome.succeeded:
                return
            if not outcome.retryable:
                break
        shown = hook.masked().url  # never a password in the log
        log.warning(
            "notification %s to %s not delivered: %s", kind, shown, outcome.error, extra=fields
        )


def _headers(hook: Webhook, body: bytes, kind: str, delivery: str) -> dict[str, str]:
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"kairos/{__version__}",
        "X-Kairos-Event": kind,
        "X-Kairos-Delivery": delivery,
        "X-Kairos-Timestamp": timestamp,
    }
    if hook.secret is not None:
        signed = timestamp.encode() + b"." + body
        digest = hmac.new(hook.secret.encode(), signed, hashlib.sha256).hexdigest()
        headers["X-Kairos-Signature"] = f"sha256={digest}"
    return headers
