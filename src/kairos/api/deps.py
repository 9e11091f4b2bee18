"""Request dependencies: the scheduler, and who the caller is and what it may do.

Each route names the scope it needs (``who: JobsWriter``, or ``allowed(Scope.RUNS_READ)``);
FastAPI lists it in the OpenAPI document, so ``/docs`` offers both ways in: the OAuth2 password
flow (users) and a plain bearer token (the admin token, API keys, or a user's access token).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
    SecurityScopes,
)

from kairos.auth import Accounts, Authenticator
from kairos.context import context_of
from kairos.engine import Scheduler
from kairos.errors import MissingScope, Unauthorized
from kairos.identity import SCOPE_HELP, Principal, Scope

__all__ = [
    "AccountsDep",
    "AdminUser",
    "AuthDep",
    "Caller",
    "HostAuth",
    "JobsWriter",
    "SchedulerDep",
    "allowed",
    "authorize",
    "host_auth",
]

_bearer = HTTPBearer(
    auto_error=False,
    description="The admin token, an API key, or an access token from POST /auth/token",
)
# Declared so /docs can sign in with a user name and password; the header it sends is the one
# ``_bearer`` reads.
_password_flow = OAuth2PasswordBearer(
    tokenUrl="auth/token",
    scopes={scope.value: text for scope, text in SCOPE_HELP.items()},
    auto_error=False,
)
_HOST_PRINCIPAL = "kairos.principal"


async def _scheduler(request: Request) -> Scheduler:
    # async: FastAPI would run a plain function in a worker thread, a costly hop per request
    return context_of(request).scheduler


async def _authenticator(request: Request) -> Authenticator:
    return context_of(request).authenticator


async def _accounts(request: Request) -> Accounts:
    return context_of(request).accounts


async def _principal(
    request: Request,
    security: SecurityScopes,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _flow: Annotated[str | None, Depends(_password_flow)],
) -> Principal:
    if _HOST_PRINCIPAL in request.scope:
        return _granting(request.scope[_HOST_PRINCIPAL], security.scopes)
    if credentials is None:
        raise Unauthorized("Missing bearer token (send 'Authorization: Bearer <token>')")
    return await authorize(request, credentials.credentials, security.scopes)


async def authorize(request: Request, token: str, scopes: list[str]) -> Principal:
    """Who ``token`` stands for, if it grants every one of ``scopes``; ``Unauthorized`` or
    ``MissingScope`` if not."""
    principal = await context_of(request).authenticator.authenticate(token)
    return _granting(principal, scopes)


def _granting(principal: Principal | None, scopes: list[str]) -> Principal:
    if principal is None:
        raise Unauthorized("Not signed in")
    for scope in scopes:
        if not principal.allows(Scope(scope)):
            raise MissingScope(scope)
    return principal


HostAuth = Callable[..., Any]
"""The embedding app's own dependency, answering the caller as a ``Principal`` (its name is
what the audit log records; its scopes are what it may do), or None for nobody."""


def host_auth(dependency: HostAuth) -> Any:
    """A dependency that runs ``dependency`` (with whatever it depends on) and makes its answer
    the caller of the routes it guards, in place of Kairos's own bearer tokens."""

    # A default, not an annotation: annotations are read in the module, which cannot see
    # ``dependency``.
    async def adopt(request: Request, principal: Principal | None = Depends(dependency)) -> None:
        if principal is not None and not isinstance(principal, Principal):
            raise TypeError(f"{dependency!r} answered {principal!r}, not a kairos Principal")
        request.scope[_HOST_PRINCIPAL] = principal

    return Depends(adopt)


def allowed(scope: Scope) -> Any:
    """The dependency that lets a request through only with ``scope``; its value is the
    ``Principal``. For routes that do not need the value: ``dependencies=[allowed(...)]``."""
    return Security(_principal, scopes=[scope.value])


# The caller, who must have the scope named (``who: JobsWriter``), or any valid token (Caller).
Caller = Annotated[Principal, Security(_principal)]
JobsWriter = Annotated[Principal, allowed(Scope.JOBS_WRITE)]
AdminUser = Annotated[Principal, allowed(Scope.ADMIN)]

SchedulerDep = Annotated[Scheduler, Depends(_scheduler)]
AuthDep = Annotated[Authenticator, Depends(_authenticator)]
AccountsDep = Annotated[Accounts, Depends(_accounts)]
