"""``BodyGuard``: what every request body must be before a route reads it.

One place for every route (the lean ``PUT /jobs/{id}``, which reads its body itself, and the web
UI's forms included):

- at most ``KAIROS_MAX_REQUEST_BYTES`` (``KAIROS_MAX_BATCH_BYTES`` for ``POST /jobs:batch``),
  else 413: refused from its ``Content-Length`` before a byte is read, or, sent in chunks, as
  soon as it passes the limit, so no more than the limit is ever held;
- a JSON body holds text: a lone UTF-16 surrogate (``"\\ud800"``) is valid JSON syntax but no
  text, and would fail wherever the string goes next (a 422 that echoes it, the database). It
  is a 422 naming the field that holds it.
"""

from __future__ import annotations

import json
import re
from collections import deque
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kairos.errors import InvalidField

__all__ = ["BodyGuard"]

_BATCH_PATH = "/jobs:batch"
# A surrogate as a JSON escape (\ud800-\udfff), or as the bytes that would encode it in UTF-8
# (which Python's JSON reader takes as well). A match may still be a valid pair (an emoji).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\xed[\xa0-\xbf]")


class BodyGuard:
    def __init__(self, app: ASGIApp, *, max_bytes: int, max_batch_bytes: int) -> None:
        self.app = app
        self._max_bytes = max_bytes
        self._max_batch_bytes = max_batch_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        batch = scope["path"].endswith(_BATCH_PATH)
        limit = self._max_batch_bytes if batch else self._max_bytes
        declared = _content_length(headers)
        is_json = _is_json(headers.get("content-type"))
        if declared is not None and declared > limit:
            await _too_large(limit, batch)(scope, receive, send)
        elif declared is not None and not is_json:
            # The server delivers no more than Content-Length says: nothing to count.
            await self.app(scope, receive, send)
        else:
            await self._checked(scope, receive, send, limit, batch, is_json)

    async def _checked(
        self, scope: Scope, receive: Receive, send: Send, limit: int, batch: bool, is_json: bool
    ) -> None:
        """Read the body (at most ``limit``), check it, and hand it on to the app."""
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
        body = b"".join(chunks)
        problem = _lone_surrogate(body) if is_json else None
        if problem is not None:
            response = JSONResponse({"detail": InvalidField(*problem).body()}, status_code=422)
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _content_length(headers: Headers) -> int | None:
    text = headers.get("content-length")
    return int(text) if text is not None and text.isdigit() else None


def _is_json(content_type: str | None) -> bool:
    """The media types FastAPI reads as JSON."""
    media = (content_type or "").partition(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


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


def _lone_surrogate(body: bytes) -> tuple[list[str | int], str] | None:
    """Where a JSON body holds a lone surrogate, and what to say, or None if nowhere (also when
    it is not JSON at all: the route says so)."""
    if not _SURROGATE.search(body):
        return None  # the usual case: no parsing here
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    message = "holds a lone UTF-16 surrogate (such as \\ud800), which is not text"
    pending: deque[tuple[list[str | int], Any]] = deque([([], value)])
    while pending:
        loc, item = pending.popleft()
        if isinstance(item, str) and not _is_text(item):
            return loc, message
        if isinstance(item, list):
            pending.extend(([*loc, index], child) for index, child in enumerate(item))
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _is_text(key):
                    return loc, f"a key {message}"
                pending.append(([*loc, key], child))
    return None


def _is_text(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
