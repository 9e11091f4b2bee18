"""``BodyGuard``: how large a request body may be, for every route of ``kairos serve``'s app
(the lean ``PUT /jobs/{id}``, which reads its body itself, and the web UI's forms included):
at most ``KAIROS_MAX_REQUEST_BYTES`` (``KAIROS_MAX_BATCH_BYTES`` for ``POST /jobs:batch`` and
``POST /jobs:apply``), else
413: refused from its ``Content-Length`` before a byte is read, or, sent in chunks, as soon as
it passes the limit, so no more than the limit is ever held.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyGuard"]

_BATCH_PATHS = ("/jobs:batch", "/jobs:apply")


class BodyGuard:
    def __init__(self, app: ASGIApp, *, max_bytes: int, max_batch_bytes: int) -> None:
        self.app = app
        self._max_bytes = max_bytes
        self._max_batch_bytes = max_batch_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        batch = scope["path"].endswith(_BATCH_PATHS)
        limit = self._max_batch_bytes if batch else self._max_bytes
        declared = _content_length(Headers(scope=scope))
        if declared is not None and declared > limit:
            await _too_large(limit, batch)(scope, receive, send)
        elif declared is not None:
            # The server delivers no more than Content-Length says: nothing to count.
            await self.app(scope, receive, send)
        else:
            await self._counted(scope, receive, send, limit, batch)

    async def _counted(
        self, scope: Scope, receive: Receive, send: Send, limit: int, batch: bool
    ) -> None:
        """Read a body sent in chunks (at most ``limit``), and hand it on to the app."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left: there is no one to answer
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await _too_large(limit, batch)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _content_length(headers: Headers) -> int | None:
    text = headers.get("content-length")
    return int(text) if text is not None and text.isdigit() else None


def _too_large(limit: int, batch: bool) -> JSONResponse:
    setting = "KAIROS_MAX_BATCH_BYTES" if batch else "KAIROS_MAX_REQUEST_BYTES"
    detail = f"The request body is larger than the {limit} bytes this server takes ({setting})"
    return JSONResponse({"detail": detail}, status_code=413)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read, then what the client sends next (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
