"""``GET /overview``: the installation at a glance; ``GET /overview/jobs``: what some jobs' runs
came to. Both read the store's summaries only (see ``Scheduler.overview``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from kairos.api.admin_schemas import (
    EndedRunsOut,
    JobRunCountsList,
    JobRunCountsOut,
    LagOut,
    NextFireOut,
    OverviewOut,
)
from kairos.api.deps import SchedulerDep, allowed
from kairos.api.routes.cluster import node_out
from kairos.api.routing import KairosRoute
from kairos.clock import from_us
from kairos.identity import Scope
from kairos.models import RunStatus
from kairos.store import JobRunCounts

__all__ = ["router"]

router = APIRouter(
    route_class=KairosRoute,
    prefix="/overview",
    tags=["overview"],
    dependencies=[allowed(Scope.RUNS_READ), allowed(Scope.JOBS_READ)],
)
_MAX_JOBS = 200


@router.get("")
async def overview(
    scheduler: SchedulerDep, limit: Annotated[int, Query(ge=0, le=100)] = 10
) -> OverviewOut:
    """Runs ended in the last hour and day, runs in flight and queued, failing and tripped jobs,
    the next fires (the first ``limit`` of each list), this node's lag and the live nodes."""
    seen = await scheduler.overview(limit=limit)
    return OverviewOut(
        at=from_us(seen.at_us),
        ended_last_hour=_ended(seen.ended_last_hour),
        ended_last_24h=_ended(seen.ended_last_day),
        running=seen.running,
        queued=seen.queued,
        failing=seen.failing,
        failing_jobs=seen.failing_jobs,
        tripped=seen.tripped,
        tripped_jobs=seen.tripped_jobs,
        next_fires=[
            NextFireOut(job_id=job.id, next_run_time=from_us(job.next_run_us))
            for job in seen.next_fires
            if job.next_run_us is not None
        ],
        lag=LagOut(calls=seen.lag.calls, mean_s=seen.lag.mean_s, max_s=seen.lag.max_s),
        node_id=seen.node_id,
        nodes=[node_out(n, seen.node_id) for n in seen.nodes],
    )


@router.get("/jobs")
async def job_run_counts(
    scheduler: SchedulerDep,
    job_id: Annotated[list[str], Query(min_length=1, max_length=_MAX_JOBS)],
) -> JobRunCountsList:
    """For each ``job_id`` given (repeat the parameter, up to 200): its ended runs by status
    over its kept history, its success rate and how its last call ended (an unknown id: zeros)."""
    found = await scheduler.job_run_counts(list(dict.fromkeys(job_id)))
    return JobRunCountsList(items=[_job_counts(i, counts) for i, counts in found.items()])


def _ended(counts: dict[RunStatus, int]) -> EndedRunsOut:
    return EndedRunsOut(**{status.value: n for status, n in counts.items()})


def _job_counts(job_id: str, stats: JobRunCounts) -> JobRunCountsOut:
    counts = stats.counts
    calls = counts[RunStatus.SUCCEEDED] + counts[RunStatus.FAILED] + counts[RunStatus.INTERRUPTED]
    return JobRunCountsOut(
        job_id=job_id,
        runs=_ended(counts),
        success_rate=counts[RunStatus.SUCCEEDED] / calls if calls else None,
        last_status=None if stats.last_status is None else stats.last_status.value,
        last_ended_at=None if stats.last_ended_us is None else from_us(stats.last_ended_us),
    )
