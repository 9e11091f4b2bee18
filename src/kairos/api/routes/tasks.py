"""The seed-compatible ``/tasks`` endpoints, kept exactly: a crontab and a URL called with POST."""

from __future__ import annotations

from fastapi import APIRouter

from kairos.api.deps import JobsWriter, SchedulerDep
from kairos.api.routing import KairosRoute
from kairos.api.schemas import TaskIn, TaskOut, job_out
from kairos.errors import InvalidField, JobNotFound, NotFound

__all__ = ["router"]

router = APIRouter(route_class=KairosRoute, prefix="/tasks", tags=["tasks"])


@router.post("")
async def put_task(scheduler: SchedulerDep, who: JobsWriter, task: TaskIn) -> TaskOut:
    """Create the cron job ``task_id``, or completely replace it (idempotent)."""
    try:
        job, created = await scheduler.put_job(task.task_id, task.to_spec(), actor=who.name)
    except InvalidField as exc:
        if exc.loc[:1] == ("trigger",):
            raise InvalidField(["crontab"], exc.message) from None
        raise
    return TaskOut(job_id=job.id, created=created, next_run_time=job_out(job, None).next_run_time)


@router.delete("/{task_id}")
async def delete_task(scheduler: SchedulerDep, who: JobsWriter, task_id: str) -> dict[str, str]:
    try:
        await scheduler.delete_job(task_id, actor=who.name)
    except JobNotFound:
        raise NotFound("Task not found") from None
    return {"status": "deleted"}
