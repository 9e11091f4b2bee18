"""The exceptions of ``kairos.client``: one tree, rooted at ``ClientError``.

A call that reached the server and was refused raises an ``ApiError`` subclass chosen by the
HTTP status, carrying the server's ``detail`` and, for invalid input, the ``field`` it names.
A call that never got an answer raises ``Unreachable``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import httpx

__all__ = [
    "ApiError",
    "ClientError",
    "Conflict",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Problem",
    "ServerError",
    "TooManyRequests",
    "Unauthorized",
    "Unreachable",
    "error_for",
]


class ClientError(Exception):
    """Any failure of a ``kairos.client`` call."""


class Unreachable(ClientError):
    """No answer from the server: it refused the connection, timed out or hung up (after the
    retries an idempotent call is allowed)."""

    def __init__(self, base_url: str, cause: httpx.TransportError) -> None:
        self.base_url = base_url
        self.cause = str(cause) or type(cause).__name__
        super().__init__(f"cannot reach Kairos at {base_url}: {self.cause}")


class Problem(NamedTuple):
    """One thing wrong with a request: the field (``trigger.expression``, ``jobs.2.id``; empty
    when the request as a whole is wrong) and what is wrong with it."""

    field: str
    message: str


class ApiError(ClientError):
    """An answer of status 400 or more. ``detail`` is the server's message; ``problems`` the
    fields it names (422), the first of them as ``field``."""

    def __init__(self, status: int, detail: str, problems: list[Problem]) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.problems = problems
        self.field = problems[0].field if problems else None


class Invalid(ApiError):
    """400 or 422: the input is not valid."""


class Unauthorized(ApiError):
    """401: no token, or one that is not valid."""


class Forbidden(ApiError):
    """403: the token lacks the scope the call needs."""


class NotFound(ApiError):
    """404: no such job, run, key or secret."""


class Conflict(ApiError):
    """409: the id is taken, or the server cannot do this now (no secrets key)."""


class TooManyRequests(ApiError):
    """429: too many failed sign-ins; wait before trying again."""


class ServerError(ApiError):
    """500 or more."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: Invalid,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: Invalid,
    429: TooManyRequests,
}
_WHERE = frozenset({"body", "query", "path", "header", "form"})


def error_for(response: httpx.Response) -> ApiError:
    """The exception for a response of status 400 or more."""
    status = response.status_code
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    try:
        detail: Any = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):
        problems = [_problem(item) for item in detail if isinstance(item, dict)]
        text = "; ".join(f"{p.field}: {p.message}" if p.field else p.message for p in problems)
        return kind(status, text, problems)
    return kind(status, str(detail) if detail else response.text[:200], [])


def _problem(item: dict[str, Any]) -> Problem:
    loc = list(item.get("loc", []))
    if loc and loc[0] in _WHERE:
        loc = loc[1:]
    return Problem(".".join(str(part) for part in loc), str(item.get("msg", "")))
