"""Who is signed in to the web UI, and the checks every page and form goes through.

The session is the bearer token itself (a user's access token, or an API key or the admin
token given at sign-in), in an HttpOnly, SameSite=Strict cookie scoped to the UI's path (``/ui``
under ``kairos serve``): scripts cannot read it and other sites cannot send it. Every form and
htmx request also carries a CSRF token, an HMAC of the session under a key derived from the
signing key, so every replica checks it alike without keeping sessions anywhere.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from urllib.parse import quote, urlparse

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from kairos.auth import Authenticator
from kairos.context import context_of
from kairos.errors import Unauthorized
from kairos.identity import Principal, Scope

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "Forbidden",
    "SignInNeeded",
    "Viewer",
    "ViewerDep",
    "check_origin",
    "csrf_token",
    "end_session",
    "root_of",
    "start_session",
    "viewer",
]

COOKIE = "kairos_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_PURPOSE = "web-csrf"


class SignInNeeded(Exception):
    """No valid session: the page redirects to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class Forbidden(Exception):
    """Signed in, without the scope a page or action needs (or a bad CSRF token). ``viewer``,
    when known, keeps the refusal page's navigation."""

    def __init__(self, message: str, viewer: Viewer | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.viewer = viewer


class Viewer:
    """The person looking at a page: who, what they may do, and their CSRF token."""

    def __init__(self, principal: Principal, csrf: str) -> None:
        self.principal = principal
        self.csrf = csrf

    @property
    def name(self) -> str:
        return self.principal.name.removeprefix("user:")

    def may(self, *scopes: str) -> bool:
        """Whether the viewer holds every one of ``scopes``."""
        return all(self.principal.allows(Scope(scope)) for scope in scopes)

    def need(self, scope: Scope) -> None:
        if not self.principal.allows(scope):
            raise Forbidden(f"You need the '{scope.value}' scope for this.", self)


async def viewer(request: Request) -> Viewer:
    """The signed-in viewer; ``SignInNeeded`` without a valid session. A request that changes
    something (not GET) must carry the session's CSRF token, or it is ``Forbidden``."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInNeeded(_here(request))
    authenticator = context_of(request).authenticator
    try:
        principal = await authenticator.authenticate(token)
    except Unauthorized:
        raise SignInNeeded(_here(request)) from None
    expected = csrf_token(authenticator, token)
    if request.method != "GET":
        check_origin(request)
        sent = request.headers.get(CSRF_HEADER)
        if sent is None:
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if sent is None or not hmac.compare_digest(sent, expected):
            message = "The form has expired or did not come from this site; reload it."
            raise Forbidden(message, Viewer(principal, expected))
    return Viewer(principal, expected)


def check_origin(request: Request) -> None:
    """A form sent from another site is ``Forbidden`` (browsers name the sending page's origin;
    this also covers the sign-in form, which has no session to tie a CSRF token to). So is one
    from an origin browsers keep secret (``null``: a sandboxed frame, a ``data:`` page)."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser: browsers name the origin of every form they post
    # Behind a proxy that rewrites Host, the name the browser used is in X-Forwarded-Host.
    forwarded = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    ours = {request.headers.get("host"), forwarded} - {None, ""}
    sender = urlparse(origin)
    if sender.scheme not in ("http", "https") or sender.netloc not in ours:
        raise Forbidden("This form was sent from another site.")


ViewerDep = Annotated[Viewer, Depends(viewer)]


def csrf_token(authenticator: Authenticator, session: str) -> str:
    return authenticator.mac(_PURPOSE, session)


def start_session(request: Request, response: Any, token: str, max_age_s: int | None) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age_s,
        path=_cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def end_session(request: Request, response: Any) -> None:
    response.delete_cookie(COOKIE, path=_cookie_path(request), httponly=True, samesite="strict")


def root_of(request: HTTPConnection) -> str:
    """The path the UI is mounted at (``/ui`` under ``kairos serve``), which every link of its
    pages starts with."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")


def _cookie_path(request: Request) -> str:
    return root_of(request) or "/"


def _here(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    root = root_of(request)
    target = request.url.path + query if request.method == "GET" else f"{root}/jobs"
    return f"{root}/login?next={quote(target, safe='')}"
