"""The executor seam: how one run's target is called."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kairos.models import TargetSpec

__all__ = ["Call", "Executor", "Outcome"]


@dataclass(frozen=True, slots=True)
class Call:
    """One attempt to call a job's target, identified so the target can deduplicate."""

    job_id: str
    run_id: int
    scheduled_for_us: int
    attempt: int
    target: TargetSpec
    timeout_s: float | None = None
    """Cuts the target's own timeout (the fire's deadline is near); None: the target's."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of a call, whatever the kind of target. ``error`` says why a call failed, in
    words a person can act on."""

    succeeded: bool
    code: int | None = None
    """The target's own answer code: the HTTP status for HTTP targets (the run's
    ``http_status``); None for a target that has none, or when there was no answer."""
    error: str | None = None
    detail: str | None = None
    """The start of what the target answered (an HTTP response's body), for the run's
    ``response_excerpt``."""
    retryable: bool = False
    """The failure may pass on another try (a timeout, a lost connection, a 5xx or 429)."""
    retry_after_s: float | None = None
    """How long the target asked to be left alone (``Retry-After``)."""
    sent: bool = True
    """False when the call failed before any byte of the request left (the connection was
    refused or timed out, the name did not resolve): the target cannot have seen it."""
    overloaded: bool = False
    """The target said it is overloaded (HTTP 429 or 503): calls to its host slow down."""
    closed: bool = False
    """The target closed the connection after answering (HTTP/1.0, ``Connection: close``): each
    call to it costs a new TCP handshake."""


class Executor(Protocol):
    async def start(self) -> None:
        """Open pools and sessions; called once before the first ``execute``."""
        ...

    async def close(self) -> None:
        """Release everything ``start`` opened."""
        ...

    async def execute(self, call: Call) -> Outcome:
        """Call the target once. Never raises for anything the target does (timeouts, refused
        connections, huge bodies): every such case is an ``Outcome`` with ``succeeded=False``.
        Cancellation propagates."""
        ...
