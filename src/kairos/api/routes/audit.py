"""``GET /audit``: every change, who made it and when, newest first."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query

from kairos.api.admin_schemas import AuditOut, AuditPage
from kairos.api.deps import SchedulerDep, allowed
from kairos.api.routing import KairosRoute
from kairos.clock import from_us
from kairos.identity import Scope

__all__ = ["router"]

router = APIRouter(route_class=KairosRoute, tags=["audit"], dependencies=[allowed(Scope.ADMIN)])


@router.get("/audit")
async def list_audit(
    scheduler: SchedulerDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    target: Annotated[
        str | None, Query(description="Only changes to this job, key or user")
    ] = None,
    actor: Annotated[str | None, Query(description="Only changes by this actor")] = None,
) -> AuditPage:
    page = await scheduler.audit_page(target=target, actor=actor, cursor=cursor, limit=limit)
    return AuditPage(
        items=[
            AuditOut(
                id=r.id,
                at=from_us(r.at_us),
                actor=r.actor,
                action=r.action,
                target=r.target,
                detail=None if r.detail is None else json.loads(r.detail),
            )
            for r in page.items
        ],
        next_cursor=page.next_cursor,
    )
