"""``GET /targets``: the target hosts this process calls, their limits and queues."""

from __future__ import annotations

from fastapi import APIRouter

from kairos.api.admin_schemas import TargetHostOut, TargetsOut
from kairos.api.deps import SchedulerDep, allowed
from kairos.api.routing import KairosRoute
from kairos.identity import Scope

__all__ = ["router"]

router = APIRouter(route_class=KairosRoute, tags=["cluster"], dependencies=[allowed(Scope.ADMIN)])


@router.get("/targets")
async def targets(scheduler: SchedulerDep) -> TargetsOut:
    """This process's view (each replica keeps its own): busiest hosts first."""
    hosts = sorted(scheduler.hosts(), key=lambda h: (-h.in_flight - len(h.waiters), h.key))
    return TargetsOut(
        node_id=scheduler.node_id,
        runs_in_flight=scheduler.runs_in_flight,
        runs_parked=scheduler.runs_parked,
        hosts=[
            TargetHostOut(
                host=h.key,
                limit=int(h.limit),
                max_concurrency=h.limits.max_concurrency,
                max_per_second=h.limits.max_per_second,
                adaptive=h.limits.adaptive,
                in_flight=h.in_flight,
                waiting=len(h.waiters),
                calls=h.calls,
                overloads=h.overloads,
                connect_retries=h.connect_retries,
                fastest_s=h.fastest_s,
                last_connect_error=h.last_error,
            )
            for h in hosts
        ],
    )
