"""Request dependencies: the scheduler, and who the caller is and what it may do.

Each route names the scope it needs (``who: JobsWriter``, or ``allowed(Scope.RUNS_READ)``);
FastAPI lists it in the OpenAPI document, so ``/docs`` offers both ways in: the OAuth2 password
flow (users) and a plain bearer token (the admin token, API keys, or a user's access token).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBearer,
    OAuth2PasswordBearer,
    SecurityScopes,
)

from kairos.auth import Accounts, Authenticator
from kairos.engine import Scheduler
from kairos.errors import MissingScope, Unauthorized
from kairos.identity import SCOPE_HELP, Principal, Scope

__all__ = [
    "AccountsDep",
    "AdminUser",
    "AuthDep",
    "Caller",
    "JobsWriter",
    "SchedulerDep",
    "allowed",
    "authorize",
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


async def _scheduler(request: Request) -> Scheduler:
    # async: FastAPI would run a plain function in a worker thread, a costly hop per request
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


async def _authenticator(request: Request) -> Authenticator:
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator


async def _accounts(request: Request) -> Accounts:
    accounts: Accounts = request.app.state.accounts
    return accounts


async def _principal(
    request: Request,
    security: SecurityScopes,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _flow: Annotated[str | None, Depends(_password_flow)],
) -> Principal:
    if credentials is None:
        raise Unauthorized("Missing bearer token (send 'Authorization: Bearer <token>')")
    return await authorize(request, credentials.credentials, security.scopes)


async def authorize(request: Request, token: str, scopes: list[str]) -> Principal:
    """Who ``token`` stands for, if it grants every one of ``scopes``; ``Unauthorized`` or
    ``MissingScope`` if not."""
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(token)
    for scope in scopes:
        if not principal.allows(Scope(scope)):
            raise MissingScope(scope)
    return principal


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
