"""``/jobs``: create, replace, change, pause, resume, run now, delete, and read history."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response, status
from pydantic import AfterValidator, TypeAdapter

from kairos.api.deps import JobsWriter, SchedulerDep, allowed, authorize
from kairos.api.routes.runs import run_page
from kairos.api.routing import Handler, KairosRoute
from kairos.api.schemas import (
    JOB_READ_ONLY,
    JobBatchIn,
    JobBatchOut,
    JobCreate,
    JobDocument,
    JobOut,
    JobPage,
    RunOut,
    RunPage,
    job_out,
    run_out,
)
from kairos.context import context_of
from kairos.errors import InvalidField
from kairos.identity import Scope
from kairos.models import (
    JOB_ID_PATTERN,
    TAG_PATTERN,
    JobSpec,
    JobState,
    RunStatus,
    reachable_id,
)
from kairos.pagination import job_query

__all__ = ["router"]

router = APIRouter(route_class=KairosRoute, prefix="/jobs", tags=["jobs"])
_READ = [allowed(Scope.JOBS_READ)]

JobId = Annotated[str, Path(description="The job's id")]
NewJobId = Annotated[
    str,
    Path(pattern=JOB_ID_PATTERN, description="1-128 of [A-Za-z0-9_.:-], not '.' or '..'"),
    AfterValidator(reachable_id),
]
Limit = Annotated[int, Query(ge=1, le=1000)]


class _PutJobRoute(KairosRoute):
    """``PUT /jobs/{id}``, the call a deployment makes for every job it defines, answered
    without FastAPI's dependency and response-model machinery when the request is well formed:
    that machinery was half the route's time. A job document as ``GET`` answers it is taken
    here too (its read-only fields dropped). Anything else (no bearer token, another content
    type, an invalid id, JSON or spec, an ``id`` that is not the URL's, the embedding app's own
    authentication) goes to the
    FastAPI handler of ``put_job``, so errors are worded as on every other route; the OpenAPI
    document comes from ``put_job`` too."""

    def endpoint_handler(self) -> Handler:
        standard = super().endpoint_handler()

        async def handle(request: Request) -> Response:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            json_body = request.headers.get("content-type") == "application/json"
            if scheme.lower() != "bearer" or not token or not json_body or _host_auth(self):
                return await standard(request)
            who = await authorize(request, token, _WRITES)  # first, as on the standard path
            try:
                job_id = _NEW_JOB_ID.validate_python(request.path_params["job_id"])
                spec = JobSpec.model_validate(_spec_part(job_id, json.loads(await request.body())))
            except Exception:  # invalid JSON, id or spec, or JSON nested too deep to read
                return await standard(request)  # words the error (the body is cached)
            scheduler = context_of(request).scheduler
            job, created = await scheduler.put_job(job_id, spec, actor=who.name)
            return Response(
                job_out(job, scheduler.tasks_served).model_dump_json(),
                status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
                media_type="application/json",
            )

        return handle


def _host_auth(route: KairosRoute) -> bool:
    return route.binding is not None and route.binding.host_auth


_WRITES = [Scope.JOBS_WRITE.value]
_NEW_JOB_ID: TypeAdapter[str] = TypeAdapter(NewJobId)
_NOT_SPEC = JOB_READ_ONLY | {"id"}


def _spec_part(job_id: str, document: Any) -> Any:
    """A job document's spec: the document itself when it holds only spec fields (what a
    deployment sends: one set test), else the document less its read-only fields and an ``id``
    that is ``job_id``. Raise ``ValueError`` for another ``id``: the standard path words it."""
    if not isinstance(document, dict) or _NOT_SPEC.isdisjoint(document):
        return document
    if document.get("id", job_id) != job_id:
        raise ValueError("the id is not the URL's")
    return {name: value for name, value in document.items() if name not in _NOT_SPEC}


async def put_job(
    scheduler: SchedulerDep,
    who: JobsWriter,
    job_id: NewJobId,
    document: Annotated[JobDocument, Body()],
    response: Response,
) -> JobOut:
    """Create the job (201) or completely replace it (200). Its schedule restarts from now;
    a run already started goes on. A rejected replacement leaves the old job untouched. What
    ``GET`` answers is taken back as it is: the read-only fields are ignored, and ``id``, if
    given, must be the URL's."""
    if document.id is not None and document.id != job_id:
        raise InvalidField(["id"], f"{document.id!r} is not the URL's job id {job_id!r}")
    job, created = await scheduler.put_job(job_id, document.spec(), actor=who.name)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return job_out(job, scheduler.tasks_served)


# Declared first: routes are tried in order, and this is the most called.
router.add_api_route(
    "/{job_id}",
    put_job,
    methods=["PUT"],
    responses={201: {"model": JobOut, "description": "Created"}},
    route_class_override=_PutJobRoute,
)


@router.get("", dependencies=_READ)
async def list_jobs(
    scheduler: SchedulerDep,
    cursor: str | None = None,
    limit: Limit = 100,
    q: Annotated[str | None, Query(pattern=JOB_ID_PATTERN, description="id prefix")] = None,
    state: JobState | None = None,
    tag: Annotated[str | None, Query(pattern=TAG_PATTERN)] = None,
    sort: Annotated[Literal["id", "next_run"], Query(description="the order")] = "id",
) -> JobPage:
    """Jobs by id, or by next run (soonest first, jobs without one last), optionally only those
    whose id starts with ``q``, in one state, or with one tag. Pass ``next_cursor`` back as
    ``cursor`` (with the same filters) for the next page."""
    query = job_query(prefix=q, state=state, tag=tag, sort=sort)
    page = await scheduler.job_page(query, limit, cursor)
    return JobPage(
        items=[job_out(job, scheduler.tasks_served) for job in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_job(scheduler: SchedulerDep, who: JobsWriter, body: JobCreate) -> JobOut:
    """Create a job; 409 if the id is taken (``PUT /jobs/{id}`` replaces instead)."""
    job = await scheduler.create_job(body.id, body.spec(), actor=who.name)
    return job_out(job, scheduler.tasks_served)


@router.post(":batch")
async def put_jobs(scheduler: SchedulerDep, who: JobsWriter, body: JobBatchIn) -> JobBatchOut:
    """Create or replace up to 10,000 jobs at once, each as ``PUT /jobs/{id}`` would, in one
    transaction: if any job is invalid nothing is written and the error names it."""
    first_index: dict[str, int] = {}
    for index, job in enumerate(body.jobs):
        if first_index.setdefault(job.id, index) != index:
            raise InvalidField(
                ["jobs", index, "id"], f"duplicate id {job.id!r} (also jobs.{first_index[job.id]})"
            )
    batch = [(job.id, job.spec()) for job in body.jobs]
    created = await scheduler.put_jobs(batch, actor=who.name)
    return JobBatchOut(created=created, replaced=len(batch) - created)


@router.get("/{job_id}", dependencies=_READ)
async def get_job(scheduler: SchedulerDep, job_id: JobId) -> JobOut:
    return job_out(await scheduler.get_job(job_id), scheduler.tasks_served)


@router.patch("/{job_id}")
async def patch_job(
    scheduler: SchedulerDep,
    who: JobsWriter,
    job_id: JobId,
    changes: Annotated[dict[str, Any], Body(examples=[{"paused": True}])],
) -> JobOut:
    """Replace the given top-level fields (``trigger``, ``target`` and the rest) as wholes."""
    unknown = sorted(set(changes) - set(JobSpec.model_fields))
    if unknown:
        raise InvalidField([unknown[0]], f"not a field that can be changed: {unknown[0]!r}")
    return job_out(
        await scheduler.patch_job(job_id, changes, actor=who.name), scheduler.tasks_served
    )


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_job(
    scheduler: SchedulerDep,
    who: JobsWriter,
    job_id: JobId,
    purge_runs: Annotated[
        bool, Query(description="delete the job's run history too (default: keep it)")
    ] = False,
) -> None:
    """Remove the job; its run history stays readable under ``/runs`` unless ``purge_runs``."""
    await scheduler.delete_job(job_id, purge_runs=purge_runs, actor=who.name)


@router.post("/{job_id}/pause")
async def pause_job(scheduler: SchedulerDep, who: JobsWriter, job_id: JobId) -> JobOut:
    return job_out(await scheduler.pause_job(job_id, actor=who.name), scheduler.tasks_served)


@router.post("/{job_id}/resume")
async def resume_job(scheduler: SchedulerDep, who: JobsWriter, job_id: JobId) -> JobOut:
    """Resume; the schedule continues from now and fires missed while paused are not run."""
    return job_out(await scheduler.resume_job(job_id, actor=who.name), scheduler.tasks_served)


@router.post("/{job_id}/run", status_code=status.HTTP_202_ACCEPTED)
async def run_job(scheduler: SchedulerDep, who: JobsWriter, job_id: JobId) -> RunOut:
    """Start one run now, outside the schedule (also for a paused job)."""
    return run_out(await scheduler.run_now(job_id, actor=who.name))


@router.get("/{job_id}/runs", dependencies=[allowed(Scope.RUNS_READ)])
async def list_job_runs(
    scheduler: SchedulerDep,
    job_id: JobId,
    cursor: str | None = None,
    limit: Limit = 50,
    status: RunStatus | None = None,
) -> RunPage:
    """This job's runs, newest first."""
    return await run_page(scheduler, job_id=job_id, status=status, cursor=cursor, limit=limit)
