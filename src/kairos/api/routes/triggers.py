"""``POST /triggers/preview``: check a trigger before saving it."""

from __future__ import annotations

from fastapi import APIRouter

from kairos.api.deps import SchedulerDep, allowed
from kairos.api.routing import KairosRoute
from kairos.api.schemas import PreviewIn, PreviewOut
from kairos.identity import Scope
from kairos.models import parse_zone
from kairos.triggers.describe import describe

__all__ = ["router"]

router = APIRouter(
    route_class=KairosRoute,
    prefix="/triggers",
    tags=["triggers"],
    dependencies=[allowed(Scope.JOBS_READ)],
)


@router.post("/preview")
async def preview(scheduler: SchedulerDep, body: PreviewIn) -> PreviewOut:
    """The next ``count`` fire times from now, in the given time zone."""
    zone = parse_zone(body.timezone)
    fire_times = scheduler.preview(body.trigger, zone, body.count)
    return PreviewOut(
        timezone=body.timezone, description=describe(body.trigger, zone), fire_times=fire_times
    )
