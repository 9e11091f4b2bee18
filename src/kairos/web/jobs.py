"""The job pages: list (search, filter, sort, inline actions, each job's last run, success rate
over its kept history and sparkline of its newest calls), detail, create and edit forms, and
the live trigger preview the forms ask for as you type.

The list's rows and a job's run history are live: the page asks for them again (same URL, the
fragment named by ``HX-Target``) while it is visible; see ``static/kairos.js``."""

from __future__ import annotations

import json
import re
from urllib.parse import quote
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from kairos import triggers
from kairos.context import context_of
from kairos.engine import Scheduler
from kairos.errors import InvalidField, JobExists, JobNotFound
from kairos.identity import Scope
from kairos.models import (
    JOB_ID_PATTERN,
    TAG_PATTERN,
    JobId,
    JobRecord,
    JobSpec,
    JobState,
    RunRecord,
    TriggerSpec,
    parse_zone,
)
from kairos.pagination import job_query
from kairos.triggers.describe import describe
from kairos.web.chart import CHART_RANGES, ChartRange, Outcomes, chart_range, outcomes, run_chart
from kairos.web.forms import UNITS, FieldError, JobForm, form_field
from kairos.web.render import page
from kairos.web.session import Viewer, ViewerDep, root_of

__all__ = ["router"]

router = APIRouter()
PAGE = 50
HISTORY = 50
RECENT = 20
"""Runs per job the list reads for its last run and sparkline (its success rate is over the
job's kept history, from the store's per-job counts)."""
CHART_CAP = 2_000
"""Runs a job's chart of a window of time reads at most: the newest of the window."""
_CHART_PAGE = 250
_ZONES = sorted(available_timezones())
_TRIGGER = TypeAdapter[TriggerSpec](TriggerSpec)
_JOB_ID = TypeAdapter[str](JobId)


def _scheduler(request: Request) -> Scheduler:
    return context_of(request).scheduler


# The list ---------------------------------------------------------------------------------------


@router.get("/jobs", response_class=HTMLResponse)
async def jobs(
    request: Request,
    who: ViewerDep,
    q: str = "",
    state: str = "",
    tag: str = "",
    sort: str = "id",
    cursor: str | None = None,
    note: str = "",
) -> Response:
    who.need(Scope.JOBS_READ)
    scheduler = _scheduler(request)
    error = None
    found: list[JobRecord] = []
    next_cursor = None
    try:
        if q and not re.match(JOB_ID_PATTERN, q):
            raise InvalidField(["q"], "ids hold only letters, digits and _ . : -")
        if tag and not re.match(TAG_PATTERN, tag):
            raise InvalidField(["tag"], "tags hold only letters, digits and _ . : -")
        chosen = JobState(state) if state else None
        query = job_query(prefix=q or None, state=chosen, tag=tag or None, sort=sort)
        listed = await scheduler.job_page(query, PAGE, cursor)
        found, next_cursor = listed.items, listed.next_cursor
    except (ValueError, InvalidField) as exc:
        error = exc.message if isinstance(exc, InvalidField) else "Not a state."
    context = {
        "jobs": found,
        "outcomes": await _outcomes(scheduler, who, found),
        "now_us": scheduler.now_us(),
        "notice": note,
        "next_cursor": next_cursor,
        "filters": bool(q or state or tag),
        "q": q,
        "state": state,
        "tag": tag,
        "sort": sort,
        "states": [s.value for s in JobState],
        "error": error,
        "section": "Jobs",
    }
    fragment = _FRAGMENTS.get(_htmx_target(request))
    return page(request, fragment or "jobs.html", who, **context)


_FRAGMENTS = {"job-table": "_job_table.html", "job-rows": "_job_rows.html"}


def _htmx_target(request: Request) -> str:
    """The element an htmx request will swap the answer into ("" for a page)."""
    return request.headers.get("HX-Target", "") if request.headers.get("HX-Request") else ""


async def _outcomes(
    scheduler: Scheduler, who: Viewer, jobs: list[JobRecord]
) -> dict[str, Outcomes]:
    if not who.may(Scope.RUNS_READ):
        return {}
    ids = [job.id for job in jobs]
    recent = await scheduler.newest_runs(ids, RECENT)
    kept = await scheduler.job_run_counts(ids)
    return {job_id: outcomes(runs, kept[job_id].counts) for job_id, runs in recent.items()}


# One job ----------------------------------------------------------------------------------------


@router.get("/new", response_class=HTMLResponse)
async def new_job(request: Request, who: ViewerDep) -> Response:
    who.need(Scope.JOBS_WRITE)
    return _form_page(request, who, JobForm(), editing=False)


@router.post("/new", response_class=HTMLResponse)
async def create_job(request: Request, who: ViewerDep) -> Response:
    who.need(Scope.JOBS_WRITE)
    form = JobForm.from_browser(await request.form())
    errors = (
        {} if _is_job_id(form.id) else {"id": "1-128 of letters, digits and _ . : -, not . or .."}
    )
    try:
        fields = form.spec_fields()
        if not form.max_consecutive_failures:
            del fields["max_consecutive_failures"]  # left empty: the server's default applies
        spec = JobSpec.model_validate(fields)
        triggers.build(spec.trigger, spec.zone)  # so a bad trigger is named with a bad id
        if not errors:
            await _scheduler(request).create_job(form.id, spec, actor=who.principal.name)
    except (FieldError, ValidationError, InvalidField, JobExists) as exc:
        errors = _errors(exc, form) | errors
    if errors:
        return _form_page(request, who, form, editing=False, errors=errors)
    return RedirectResponse(_job_url(request, form.id), status_code=303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
async def job_detail(
    request: Request, who: ViewerDep, job_id: str, note: str = "", chart: str = "50"
) -> Response:
    who.need(Scope.JOBS_READ)
    chosen = chart_range(chart)
    scheduler = _scheduler(request)
    job = await _job_or_none(scheduler, job_id)
    if job is None:
        return _missing(request, who, job_id)
    zone = job.spec.zone
    fires = []
    if not job.spec.paused and job.next_run_us is not None:
        fires = scheduler.preview(job.spec.trigger, zone, 10)
    runs = (
        await scheduler.list_runs(job_id=job.id, limit=HISTORY)
        if who.may(Scope.RUNS_READ.value)
        else []
    )
    shown = job.spec.masked()
    live = _htmx_target(request) == "job-history"
    now_us = scheduler.now_us()
    charted, capped = await _charted(scheduler, job.id, chosen, runs, now_us)
    return page(
        request,
        "_job_history.html" if live else "job.html",
        who,
        live=live,
        job=job,
        missing_task=_scheduler(request).missing_task(job),
        target=shown.target,
        words=describe(job.spec.trigger, zone),
        fires=fires,
        runs=runs,
        chart=run_chart(charted, chosen, now_us=now_us, zone=zone, capped=capped),
        ranges=CHART_RANGES,
        definition=json.dumps(shown.model_dump(mode="json"), indent=2),
        note=note,
        section="Jobs",
    )


async def _charted(
    scheduler: Scheduler, job_id: str, chosen: ChartRange, newest: list[RunRecord], now_us: int
) -> tuple[list[RunRecord], int]:
    """The runs the chart draws and, when a window of time holds more than ``CHART_CAP``, that
    cap (0 otherwise): the newest runs the page lists, or those of the window, read newest first
    a page at a time on the runs' ``(job_id, id)`` index until one is older than the window."""
    if chosen.window_us is None or not newest:
        return newest, 0
    since, _ = chosen.bounds(now_us)
    found: list[RunRecord] = []
    before = None
    while True:
        limit = min(_CHART_PAGE, CHART_CAP + 1 - len(found))
        page = await scheduler.list_runs(job_id=job_id, before_id=before, limit=limit)
        found += [run for run in page if run.scheduled_for_us >= since]
        if len(page) < limit or page[-1].scheduled_for_us < since or len(found) > CHART_CAP:
            break
        before = page[-1].id
    return found[:CHART_CAP], CHART_CAP if len(found) > CHART_CAP else 0


@router.get("/jobs/{job_id}/edit", response_class=HTMLResponse)
async def edit_job(request: Request, who: ViewerDep, job_id: str) -> Response:
    who.need(Scope.JOBS_WRITE)
    job = await _job_or_none(_scheduler(request), job_id)
    if job is None:
        return _missing(request, who, job_id)
    return _form_page(request, who, JobForm.from_spec(job.id, job.spec), editing=True)


@router.post("/jobs/{job_id}/edit", response_class=HTMLResponse)
async def save_job(request: Request, who: ViewerDep, job_id: str) -> Response:
    """Saves only what the form changed (as ``PATCH``), so what it does not show is kept."""
    who.need(Scope.JOBS_WRITE)
    scheduler = _scheduler(request)
    current = await _job_or_none(scheduler, job_id)
    if current is None:
        return _missing(request, who, job_id)
    form = JobForm.from_browser(await request.form(), base=current.spec)
    form.id = job_id
    try:
        edited = JobSpec.model_validate(form.spec_fields()).model_dump(mode="json")
        before = current.spec.masked().model_dump(mode="json")
        changes = {name: value for name, value in edited.items() if value != before.get(name)}
        if changes:
            await scheduler.patch_job(job_id, changes, actor=who.principal.name)
    except (FieldError, ValidationError, InvalidField) as exc:
        return _form_page(request, who, form, editing=True, errors=_errors(exc, form))
    return RedirectResponse(_job_url(request, job_id), status_code=303)


# Actions ----------------------------------------------------------------------------------------


@router.post("/jobs/{job_id}/{action}", response_class=HTMLResponse)
async def act(request: Request, who: ViewerDep, job_id: str, action: str) -> Response:
    """pause, resume, run or delete: the changed row for htmx, else back to the job."""
    who.need(Scope.JOBS_WRITE)
    scheduler = _scheduler(request)
    actor = who.principal.name
    note = ""
    try:
        if action == "pause":
            job = await scheduler.pause_job(job_id, actor=actor)
        elif action == "resume":
            job = await scheduler.resume_job(job_id, actor=actor)
        elif action == "run":
            run = await scheduler.run_now(job_id, actor=actor)
            job = await scheduler.get_job(job_id)
            note = f"Run {run.id} queued."
        elif action == "delete":
            await scheduler.delete_job(job_id, actor=actor)
            if request.headers.get("HX-Request"):
                return HTMLResponse("")
            return RedirectResponse(f"{root_of(request)}/jobs", status_code=303)
        else:
            return page(
                request, "message.html", who, 404, heading="Not found", message="No such action."
            )
    except JobNotFound:
        return _missing(request, who, job_id)
    if request.headers.get("HX-Request"):
        seen = await _outcomes(scheduler, who, [job])
        now_us = scheduler.now_us()
        return page(request, "_job_row.html", who, job=job, note=note, outcomes=seen, now_us=now_us)
    suffix = f"?note={note}" if note else ""
    return RedirectResponse(_job_url(request, job_id) + suffix, status_code=303)


@router.post("/preview", response_class=HTMLResponse)
async def preview(request: Request, who: ViewerDep) -> Response:
    """The schedule a form's trigger fields make, in words and as its next fire times."""
    form = JobForm.from_browser(await request.form())
    scheduler = _scheduler(request)
    try:
        zone = parse_zone(form.timezone or "UTC")
    except ValueError as exc:
        return page(request, "_preview.html", who, error=str(exc), error_field="Time zone")
    try:
        trigger = _TRIGGER.validate_python(form.trigger())
        fires = scheduler.preview(trigger, zone, 5)
    except (FieldError, ValidationError, InvalidField) as exc:
        errors = _errors(exc, form)
        name, message = next(iter(errors.items()))
        return page(
            request, "_preview.html", who, error=message, error_field=name.replace("_", " ")
        )
    words = describe(trigger, zone)
    return page(request, "_preview.html", who, words=words, fires=fires, zone=zone.key)


# Helpers ----------------------------------------------------------------------------------------


def _form_page(
    request: Request,
    who: Viewer,
    form: JobForm,
    *,
    editing: bool,
    errors: dict[str, str] | None = None,
) -> Response:
    root = root_of(request)
    action = _job_url(request, form.id) + "/edit" if editing else f"{root}/new"
    scheduler = _scheduler(request)
    return page(
        request,
        "job_form.html",
        who,
        422 if errors else 200,
        form=form.values(),
        editing=editing,
        errors=errors or {},
        action=action,
        cancel=_job_url(request, form.id) if editing else f"{root}/jobs",
        zones=_ZONES,
        units=list(UNITS),
        tasks=sorted(scheduler.tasks_registered),
        served=sorted(scheduler.tasks_served),
        section="Jobs",
    )


def _errors(exc: Exception, form: JobForm) -> dict[str, str]:
    """Form field -> what is wrong with it."""
    if isinstance(exc, FieldError):
        return {exc.name: exc.message}
    if isinstance(exc, JobExists):
        return {"id": "a job with this id exists already"}
    if isinstance(exc, InvalidField):
        return {form_field(exc.loc, form.trigger_kind, form.target_kind): exc.message}
    assert isinstance(exc, ValidationError)
    errors: dict[str, str] = {}
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        errors.setdefault(form_field(error["loc"], form.trigger_kind, form.target_kind), message)
    return errors


def _is_job_id(text: str) -> bool:
    try:
        _JOB_ID.validate_python(text)
    except ValidationError:
        return False
    return True


async def _job_or_none(scheduler: Scheduler, job_id: str) -> JobRecord | None:
    try:
        return await scheduler.get_job(job_id)
    except JobNotFound:
        return None


def _missing(request: Request, who: Viewer, job_id: str) -> Response:
    message = f"There is no job {job_id!r} (it may have been deleted)."
    return page(request, "message.html", who, 404, heading="Job not found", message=message)


def _job_url(request: Request, job_id: str) -> str:
    return f"{root_of(request)}/jobs/" + quote(job_id, safe="")
