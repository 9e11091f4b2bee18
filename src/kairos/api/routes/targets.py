"""``GET /targets``: the target hosts this process calls, their limits and queues."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from kairos.api.deps import SchedulerDep, allowed
from kairos.api.routing import KairosRoute
from kairos.identity import Scope

__all__ = ["router"]

router = APIRouter(route_class=KairosRoute, tags=["cluster"], dependencies=[allowed(Scope.ADMIN)])


class TargetHostOut(BaseModel):
    host: str = Field(description="host:port; calls to one share these limits")
    limit: int = Field(description="Calls this process may have in flight there now")
    max_concurrency: int = Field(description="The most the limit may grow to")
    max_per_second: float | None
    adaptive: bool
    in_flight: int
    waiting: int = Field(description="Runs due and waiting for a slot there")
    calls: int = Field(description="Calls started there since this process started")
    overloads: int = Field(description="Calls that showed it overloaded")
    connect_retries: int = Field(description="Calls that never left and were tried again")
    fastest_s: float | None = Field(description="Its fastest answer of late, in seconds")
    last_connect_error: str | None


class TargetsOut(BaseModel):
    node_id: str
    runs_in_flight: int
    runs_parked: int = Field(description="Runs waiting for their host, or to connect again")
    hosts: list[TargetHostOut]


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
