"""``HttpExecutor``: calls HTTP targets with aiohttp over one shared connection pool.

aiohttp was chosen on measured throughput: on 2 cores it completed 5,000 concurrent calls to a
local target at about 3,200 calls/s, where httpx's async client timed out at 1,000.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import aiohttp
import orjson
from aiohttp import HttpVersion, HttpVersion11

from kairos import __version__
from kairos.clock import from_us
from kairos.executors.base import Call, Outcome
from kairos.executors.guard import GuardedResolver, OutboundGuard, OutboundRefused
from kairos.masking import SECRET_MASK
from kairos.models import HttpTarget
from kairos.settings import Settings

__all__ = ["HttpExecutor", "Request"]

_USER_AGENT = f"kairos/{__version__}"
_OVERLOADED = frozenset({429, 503})


class Request(NamedTuple):
    """One call as HTTP: plain values, cheap to build and to send to a worker process."""

    method: str
    url: str
    host: str
    headers: dict[str, str]
    body: bytes | None
    timeout_s: float

    @classmethod
    def of(cls, call: Call, default_timeout_s: float) -> Request | Outcome:
        """The request making ``call``, or the failed outcome of a call that cannot be made."""
        target = call.target
        if not isinstance(target, HttpTarget):
            return Outcome(False, error=f"not an HTTP target: {target.type}", sent=False)
        timeout_s = target.timeout or default_timeout_s
        if call.timeout_s is not None:
            timeout_s = min(timeout_s, call.timeout_s)
        try:
            body = _body(target.body)
        except TypeError as exc:  # stored before bodies were checked: an integer beyond 64 bits
            return Outcome(False, error=f"the body cannot be sent as JSON: {exc}", sent=False)
        url = target.url
        return cls(target.method, str(url), url.host or "", _headers(call, target), body, timeout_s)


class HttpExecutor:
    def __init__(
        self,
        *,
        max_connections: int,
        response_excerpt_bytes: int,
        default_timeout_s: float,
        guard: OutboundGuard,
        retry_statuses: frozenset[int] = frozenset(),
        connect_timeout_s: float | None = None,
    ) -> None:
        self._guard = guard
        self._retry_statuses = retry_statuses
        self._max_connections = max_connections
        self._excerpt_bytes = response_excerpt_bytes
        self._default_timeout_s = default_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpExecutor:
        return cls(**cls.options(settings))

    @staticmethod
    def options(settings: Settings) -> dict[str, Any]:
        """The keyword arguments ``settings`` make (picklable, for worker processes)."""
        return {
            "max_connections": settings.max_concurrent_runs,
            "response_excerpt_bytes": settings.response_excerpt_bytes,
            "default_timeout_s": settings.default_http_timeout,
            "guard": OutboundGuard.from_settings(settings),
            "retry_statuses": settings.retry_statuses,
            "connect_timeout_s": settings.connect_timeout,
        }

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            ttl_dns_cache=60,
            resolver=GuardedResolver(self._guard),
        )
        # No cookie jar: a cookie set by one job's target must never reach another job's.
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent",),
            auto_decompress=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def execute(self, call: Call) -> Outcome:
        request = Request.of(call, self._default_timeout_s)
        return request if isinstance(request, Outcome) else await self.send(request)

    async def send(self, request: Request) -> Outcome:
        assert self._session is not None, "start() was not called"
        timeout_s = request.timeout_s
        retry_after = None
        try:
            self._guard.check_literal(request.host)
            # Redirects are not followed: a 3xx could send the call anywhere, so it is reported.
            async with self._session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=self._timeout(timeout_s),
                allow_redirects=False,
            ) as response:
                excerpt = await self._excerpt(response)
                status = response.status
                reason = response.reason or ""
                closed = _closes(response.version, response.headers)
                if not 200 <= status < 300:
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                if response.content.at_eof():
                    response.release()
                else:
                    # Never drain a large body: drop the connection instead.
                    response.close()
        except aiohttp.ConnectionTimeoutError:
            error = f"cannot connect to {request.host}: no connection within "
            error += f"{min(timeout_s, self._connect_timeout_s or timeout_s):g} s"
            return Outcome(False, error=error, retryable=True, sent=False)
        except TimeoutError:
            return Outcome(False, error=f"timed out after {timeout_s:g} s", retryable=True)
        except OutboundRefused as exc:
            return Outcome(False, error=f"refused: {exc}", sent=False)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, OutboundRefused):
                return Outcome(False, error=f"refused: {exc.os_error}", sent=False)
            error = f"cannot connect to {exc.host}:{exc.port}: {exc.os_error}"
            # A TLS handshake that failed will fail again: only the others are worth retrying.
            retryable = not isinstance(exc, aiohttp.ClientSSLError)
            return Outcome(False, error=error, retryable=retryable, sent=False)
        except aiohttp.ClientError as exc:
            error = _described(exc, request.url)
            return Outcome(False, error=error, retryable=not isinstance(exc, aiohttp.InvalidURL))
        except OSError as exc:
            return Outcome(False, error=_described(exc, request.url), retryable=True)
        except ValueError as exc:
            return Outcome(False, error=_described(exc, request.url))
        if 200 <= status < 300:
            return Outcome(True, code=status, detail=excerpt, closed=closed)
        return Outcome(
            False,
            code=status,
            error=f"HTTP {status} {reason}".strip(),
            detail=excerpt,
            retryable=status in self._retry_statuses,
            retry_after_s=retry_after,
            overloaded=status in _OVERLOADED,
            closed=closed,
        )

    async def _excerpt(self, response: aiohttp.ClientResponse) -> str | None:
        if self._excerpt_bytes == 0:
            return None
        chunks: list[bytes] = []
        size = 0
        while size < self._excerpt_bytes:
            chunk = await response.content.read(self._excerpt_bytes - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks).decode("utf-8", errors="replace") if chunks else None

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            # The connect phase has a deadline of its own: a call that never connected was
            # never sent, so it can be tried again (see ``Outcome.sent``).
            connect_s = self._connect_timeout_s
            if connect_s is not None and connect_s >= seconds:
                connect_s = None
            timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=connect_s)
            self._timeouts[seconds] = timeout
        return timeout


def _closes(version: HttpVersion | None, headers: Mapping[str, str]) -> bool:
    """Whether the target closes the connection after this answer."""
    old = version is not None and version < HttpVersion11
    return old or headers.get("Connection", "").lower() == "close"


def _described(exc: Exception, url: str) -> str:
    """The error for the run: never with the URL's password, which an exception may quote."""
    text = f"{type(exc).__name__}: {exc}".rstrip(": ")
    password = urlsplit(url).password
    if password:
        text = text.replace(password, SECRET_MASK).replace(unquote(password), SECRET_MASK)
    return text


def _retry_after(value: str | None) -> float | None:
    """Seconds from now that a ``Retry-After`` value (seconds, or an HTTP date) asks for."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


@lru_cache(maxsize=1024)
def _iso(epoch_us: int) -> str:
    # Fires due at one instant share it: a burst formats it once.
    return from_us(epoch_us).isoformat()


def _headers(call: Call, target: HttpTarget) -> dict[str, str]:
    scheduled = _iso(call.scheduled_for_us)
    headers = {
        "User-Agent": _USER_AGENT,
        **target.headers,
        "X-Kairos-Job-Id": call.job_id,
        "X-Kairos-Run-Id": str(call.run_id),
        "X-Kairos-Scheduled-For": scheduled,
        "X-Kairos-Attempt": str(call.attempt),
        # The same for every attempt of one fire, so a target can deduplicate retries.
        "Idempotency-Key": f"{call.job_id}@{scheduled}",
    }
    if target.body is not None and not _has(target.headers, "content-type"):
        headers["Content-Type"] = (
            "text/plain; charset=utf-8" if isinstance(target.body, str) else "application/json"
        )
    return headers


def _body(body: Any) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, str):
        return body.encode()
    return orjson.dumps(body)


def _has(headers: dict[str, str], name: str) -> bool:
    return any(key.lower() == name for key in headers)
