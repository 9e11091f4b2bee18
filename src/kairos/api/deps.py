"""Request dependencies: the scheduler and the bearer-token check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from kairos.auth import TokenVerifier
from kairos.engine import Scheduler
from kairos.errors import Unauthorized

__all__ = ["SchedulerDep", "require_token"]

_bearer = HTTPBearer(auto_error=False, description="An admin token (KAIROS_ADMIN_TOKEN)")


async def _scheduler(request: Request) -> Scheduler:
    # async: FastAPI would run a plain function in a worker thread, a costly hop per request
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None:
        raise Unauthorized("Missing bearer token (send 'Authorization: Bearer <token>')")
    verifier: TokenVerifier = request.app.state.tokens
    if not verifier.verify(credentials.credentials):
        raise Unauthorized("Invalid bearer token")


SchedulerDep = Annotated[Scheduler, Depends(_scheduler)]
