"""``Forwarded``: what a trusted reverse proxy says of a request, for ``kairos serve``'s app.

From a client listed in ``KAIROS_TRUSTED_PROXIES``, ``X-Forwarded-Prefix`` is the path the
proxy serves this app under (``/scheduler`` when ``/scheduler/ui/jobs`` reaches the app as
``/ui/jobs``): it becomes part of the request's ``root_path`` and ``path``, as an ASGI server's
``--root-path`` would, so every link, form, asset, redirect and cookie path the UI and the API's
pages make starts with it. ``X-Forwarded-For`` and ``X-Forwarded-Proto`` from the same proxies
name the client and its scheme. From any other client the three are ignored: anyone could send
them.

The proxy is known by the address the connection comes from, so the server in front of this app
must not rewrite that address first (``kairos serve`` leaves these headers to this middleware
when proxies are listed; under another server, turn its own proxy-header handling off).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any, cast

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

__all__ = ["Forwarded"]

_PREFIX = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+")
"""One or more path segments, each of the characters a path may hold unescaped."""


class Forwarded:
    def __init__(self, app: ASGIApp, *, trusted: Sequence[str]) -> None:
        self._networks = [ipaddress.ip_network(entry, strict=False) for entry in trusted]
        # uvicorn's own reading of X-Forwarded-For and -Proto, behind this class's check.
        headers = ProxyHeadersMiddleware(cast(Any, app), trusted_hosts=list(trusted))
        self._app = cast(ASGIApp, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self._trusted(scope):
            sent = Headers(scope=scope).get("x-forwarded-prefix")
            if sent is not None:
                prefix = _prefix(sent)
                if prefix is None:
                    detail = (
                        "X-Forwarded-Prefix: a path such as /scheduler, of letters, digits and"
                        f" - . _ ~ % and the like, not {sent[:100]!r}"
                    )
                    await JSONResponse({"detail": detail}, 400)(scope, receive, send)
                    return
                scope = _under(scope, prefix)
        await self._app(scope, receive, send)

    def _trusted(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not self._networks:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False  # a Unix socket's peer, say: no address to trust
        return any(address in network for network in self._networks)


def _prefix(sent: str) -> str | None:
    """The path a proxy named (the first, where proxies in a row each added theirs), without a
    trailing slash ("" for the root); None if it is not a path."""
    value = sent.split(",")[0].strip().rstrip("/")
    if not value:
        return ""
    if _PREFIX.fullmatch(value) is None or any(
        part in (".", "..") for part in value.split("/")[1:]
    ):
        return None
    return value


def _under(scope: Scope, prefix: str) -> Scope:
    if not prefix:
        return scope
    moved = dict(scope)
    moved["root_path"] = prefix + scope.get("root_path", "")
    moved["path"] = prefix + scope["path"]
    if scope.get("raw_path") is not None:
        moved["raw_path"] = prefix.encode() + scope["raw_path"]
    return moved
