"""How ``kairos serve`` runs uvicorn: ``QuietServer``, a main loop woken by a shutdown signal
instead of polling for one; ``GuardedHttpProtocol``, uvicorn's HTTP/1.1 protocol with the limits
it lacks (how long a request's head and body may take, how many connections may be open); and
``connection_cap``, which raises the open-file limit and says how many connections fit in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from dataclasses import dataclass
from types import FrameType
from typing import ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kairos.settings import Settings

__all__ = ["ConnectionLimits", "GuardedHttpProtocol", "QuietServer", "connection_cap"]

log = logging.getLogger("kairos.server")

# Descriptors the process holds besides its clients' connections: standard streams, the event
# loop, the listening socket, the database's files or connections, the pipes to the HTTP
# workers, webhook connections.
RESERVED_FILES = 128
# Where the hard limit is RLIM_INFINITY: as far as the soft one is raised (Linux's default
# fs.nr_open).
_UNLIMITED = 1_048_576
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 21\r\nconnection: close\r\nretry-after: 1\r\n\r\nToo many connections\n"
)
_REFUSAL_LOG_EVERY_S = 60.0


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


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    header_timeout_s: float
    """From the connection's start, or its request's first byte, to the end of its head."""
    body_timeout_s: float
    """Longest pause within a request's body."""


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, which times out only the idle time after a response: a
    socket that connects and sends nothing, or half a request head, or a body that stops, would
    hold its file descriptor for ever. Here a request's head must be complete within
    ``header_timeout_s`` of the connection's start (or of its first byte, for the next request
    on a kept-alive connection), a body may pause for ``body_timeout_s`` at most, and a
    connection beyond ``max_connections`` is answered 503 and closed at once, before it can
    hold anything. (uvicorn's ``limit_concurrency`` counts the same connections, but only once
    a request's head is in: idle sockets are never refused.)

    ``bound(limits)`` is the class to give uvicorn."""

    limits: ClassVar[ConnectionLimits]
    _refusals: ClassVar[int] = 0
    _refusal_logged_at_s: ClassVar[float] = -_REFUSAL_LOG_EVERY_S
    # Setting a timer and cancelling it costs about 3 us: twice per request would be a few
    # percent of a short one. Each step of a request moves the deadline alone, and one timer
    # per connection, when it fires, closes the connection or waits for the new deadline.
    _deadline_s: float | None = None
    """When the request being read is late (loop time); None between requests."""
    _timer: asyncio.TimerHandle | None = None

    @staticmethod
    def bound(limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
        class Bound(GuardedHttpProtocol):
            pass

        Bound.limits = limits
        return Bound

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse()  # closed: it receives nothing more
            return
        self._expect_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline_s is None:  # the next request on a kept-alive connection
            self._expect_head()

    def on_headers_complete(self) -> None:
        self._deadline_s = self.loop.time() + self.limits.body_timeout_s
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._deadline_s = self.loop.time() + self.limits.body_timeout_s
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._deadline_s = None
        super().on_message_complete()

    def _expect_head(self) -> None:
        self._deadline_s = deadline_s = self.loop.time() + self.limits.header_timeout_s
        if self._timer is not None and self._timer.when() > deadline_s:
            self._timer.cancel()  # set for a body's longer pause
            self._timer = None
        if self._timer is None:
            self._timer = self.loop.call_at(deadline_s, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._deadline_s is None:
            return  # between requests: uvicorn's keep-alive timeout applies
        now_s = self.loop.time()
        if self.flow.read_paused:
            # The application has not taken the body read so far: the wait is not the client's.
            self._deadline_s = now_s + self.limits.body_timeout_s
        if now_s < self._deadline_s:
            self._timer = self.loop.call_at(self._deadline_s, self._check)
        else:
            self.transport.close()

    def _refuse(self) -> None:
        self.transport.write(_REFUSAL)
        self.transport.close()
        cls = type(self)
        cls._refusals += 1
        now_s = time.monotonic()
        if now_s - cls._refusal_logged_at_s >= _REFUSAL_LOG_EVERY_S:
            log.warning(
                "%d connection(s) refused with 503 since the last such line: %d are open, the "
                "most this server accepts (KAIROS_MAX_CONNECTIONS, or the open-file limit)",
                cls._refusals,
                self.limits.max_connections,
            )
            cls._refusals, cls._refusal_logged_at_s = 0, now_s


def connection_cap(settings: Settings) -> int:
    """Raise this process's open-file limit to its hard limit (worker processes inherit it),
    log it, and answer how many connections the server accepts at once:
    ``KAIROS_MAX_CONNECTIONS``, or fewer if the limit has no room for so many."""
    reserved = RESERVED_FILES + (0 if settings.http_workers else settings.max_concurrent_runs)
    wanted = settings.max_connections + reserved
    before, limit, hard = _raise_file_limit(wanted)
    cap = max(1, min(settings.max_connections, limit - reserved))
    raised = f" (raised from {before})" if limit > before else ""
    if cap < settings.max_connections:
        log.warning(
            "open-file limit %d%s, hard limit %s: too low for KAIROS_MAX_CONNECTIONS=%d, which "
            "needs %d (%d more for the database, HTTP calls and the rest); accepting at most %d "
            "connections at once. Raise the hard limit (ulimit -Hn, LimitNOFILE= in systemd).",
            *(limit, raised, hard, settings.max_connections, wanted, reserved, cap),
        )
    else:
        log.info("open-file limit %d%s: accepting up to %d connections at once", limit, raised, cap)
    return cap


def _raise_file_limit(wanted: int) -> tuple[int, int, str]:
    """The soft limit before and after raising it (to the hard limit, or else to ``wanted``),
    and the hard limit, as text."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _UNLIMITED, _UNLIMITED, "unlimited"
    ceiling = _UNLIMITED if hard == resource.RLIM_INFINITY else hard
    for target in (ceiling, min(wanted, ceiling)):
        if soft < target:
            try:  # macOS refuses more than kern.maxfilesperproc, whatever the hard limit
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                break
            except (ValueError, OSError):
                continue
    after = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft, after, "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
