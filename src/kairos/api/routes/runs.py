"""``/runs``: the history of every run, newest first, and stopping one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from kairos.api.deps import JobsWriter, SchedulerDep, allowed
from kairos.api.routing import KairosRoute
from kairos.api.schemas import RunOut, RunPage, run_out
from kairos.engine import Scheduler
from kairos.identity import Scope
from kairos.models import RunStatus
from kairos.pagination import MAX_ID

__all__ = ["router", "run_page"]

router = APIRouter(route_class=KairosRoute, prefix="/runs", tags=["runs"])
_READ = [allowed(Scope.RUNS_READ)]
RunId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", dependencies=_READ)
async def list_runs(
    scheduler: SchedulerDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    status: RunStatus | None = None,
    job_id: str | None = None,
) -> RunPage:
    return await run_page(scheduler, job_id=job_id, status=status, cursor=cursor, limit=limit)


@router.get("/{run_id}", dependencies=_READ)
async def get_run(scheduler: SchedulerDep, run_id: RunId) -> RunOut:
    return run_out(await scheduler.get_run(run_id))


@router.post("/{run_id}/cancel")
async def cancel_run(scheduler: SchedulerDep, who: JobsWriter, run_id: RunId) -> RunOut:
    """Stop a queued or running run, on whichever replica holds it (within a second): an
    HTTP call is aborted, an async python task cancelled. It is recorded ``cancelled`` and not
    retried. 409 for a run that has already ended."""
    return run_out(await scheduler.cancel_run(run_id, actor=who.name))


async def run_page(
    scheduler: Scheduler,
    *,
    job_id: str | None,
    status: RunStatus | None,
    cursor: str | None,
    limit: int,
) -> RunPage:
    page = await scheduler.run_page(job_id=job_id, status=status, cursor=cursor, limit=limit)
    return RunPage(items=[run_out(run) for run in page.items], next_cursor=page.next_cursor)
