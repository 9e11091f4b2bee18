"""``POST /jobs:apply``: jobs as code. A set of job documents is compared with the server's
jobs and applied in one transaction, or with ``dry_run`` only compared."""

from __future__ import annotations

from fastapi import APIRouter

from kairos.api.deps import JobsWriter, SchedulerDep
from kairos.api.routing import KairosRoute
from kairos.api.schemas import JobApplyIn, JobApplyOut
from kairos.errors import InvalidField

__all__ = ["router"]

router = APIRouter(route_class=KairosRoute, prefix="/jobs", tags=["jobs"])


@router.post(":apply")
async def apply_jobs(scheduler: SchedulerDep, who: JobsWriter, body: JobApplyIn) -> JobApplyOut:
    """Make the server's jobs what ``jobs`` say: create the missing, replace those that differ,
    leave the same alone, and with ``prune`` delete the jobs the ``selector`` (``tag=T``)
    picks that no document names. All in one transaction, audited as one ``jobs.apply``
    change; any invalid document and nothing is written, the error naming it. With
    ``dry_run`` nothing is written: the answer says what would happen."""
    first_index: dict[str, int] = {}
    for index, job in enumerate(body.jobs):
        if first_index.setdefault(job.id, index) != index:
            raise InvalidField(
                ["jobs", index, "id"], f"duplicate id {job.id!r} (also jobs.{first_index[job.id]})"
            )
    plan = await scheduler.apply_jobs(
        [(job.id, job.spec()) for job in body.jobs],
        prune_tag=body.prune_tag(),
        dry_run=body.dry_run,
        actor=who.name,
    )
    return JobApplyOut(
        dry_run=body.dry_run,
        created=plan.created,
        changed=plan.changed,
        unchanged=plan.unchanged,
        deleted=plan.deleted,
    )
