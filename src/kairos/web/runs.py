"""One run's page: everything recorded about it, the attempts of its fire, the request its
target is sent (secrets masked), and cancelling it while it is queued or running."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kairos.context import context_of
from kairos.engine import Scheduler
from kairos.errors import JobNotFound, RunEnded, RunNotFound
from kairos.executors.base import Call
from kairos.executors.http import Request as HttpRequest
from kairos.identity import Scope
from kairos.models import HttpTarget, JobRecord, RunRecord, RunStatus
from kairos.web.highlight import json_excerpt
from kairos.web.render import page
from kairos.web.session import Viewer, ViewerDep, root_of

__all__ = ["router"]

router = APIRouter()
SCAN_PAGE = 100
SCAN_PAGES = 3
"""How far the attempts of a fire are looked for on either side of a run, in pages of the job's
runs: retries follow within a few fires of their first attempt."""
_CANCELLABLE = frozenset({RunStatus.SCHEDULED, RunStatus.RUNNING})
_RETRIED = frozenset({RunStatus.FAILED, RunStatus.INTERRUPTED})


@dataclass(frozen=True, slots=True)
class _SentRequest:
    """What a run's call sends, as shown: the method and URL, every header, the body."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None


@router.get("/runs/{run_id}", response_class=HTMLResponse)
async def run_detail(request: Request, who: ViewerDep, run_id: str, note: str = "") -> Response:
    who.need(Scope.RUNS_READ)
    scheduler = context_of(request).scheduler
    run = await _run_or_none(scheduler, run_id)
    if run is None:
        return _missing(request, who, run_id)
    job = await _job_or_none(scheduler, run.job_id)
    excerpt = run.response_excerpt
    return page(
        request,
        "run.html",
        who,
        run=run,
        job=job,
        attempts=await _attempt_chain(scheduler, run) if job is not None else [run],
        lag=_lag(run),
        excerpt_json=None if excerpt is None else json_excerpt(excerpt),
        target=None if job is None else job.spec.target.masked(),
        sent=None if job is None else _sent(job, run),
        cancellable=run.status in _CANCELLABLE and who.may(Scope.JOBS_WRITE.value),
        note=note,
        section="Runs",
    )


@router.post("/runs/{run_id}/cancel", response_class=HTMLResponse)
async def cancel(request: Request, who: ViewerDep, run_id: str) -> Response:
    """Stops a queued or running run (as ``POST /runs/{id}/cancel``), then back to its page."""
    who.need(Scope.JOBS_WRITE)
    scheduler = context_of(request).scheduler
    run = await _run_or_none(scheduler, run_id)
    if run is None:
        return _missing(request, who, run_id)
    try:
        await scheduler.cancel_run(run.id, actor=who.principal.name)
        note = "Cancelled."
    except RunEnded:
        note = "It had already ended."
    except RunNotFound:
        return _missing(request, who, run_id)
    url = f"{root_of(request)}/runs/{run.id}?" + urlencode({"note": note})
    return RedirectResponse(url, status_code=303)


async def _attempt_chain(scheduler: Scheduler, run: RunRecord) -> list[RunRecord]:
    """The attempts of ``run``'s fire (the job's runs scheduled for the same time), first to
    last. A retry is written after the attempt before it, so earlier attempts are looked for
    among the runs older than ``run`` and later ones among the newer, each a few pages deep."""
    found = {run.id: run}
    if run.attempt > 1:
        found |= {r.id: r for r in await _scan(scheduler, run, newer=False)}
    if run.status in _RETRIED:
        found |= {r.id: r for r in await _scan(scheduler, run, newer=True) if r.id > run.id}
    return sorted(found.values(), key=lambda r: (r.attempt, r.id))


async def _scan(scheduler: Scheduler, run: RunRecord, *, newer: bool) -> list[RunRecord]:
    """The job's runs of ``run``'s fire, newest first: those newer than ``run`` (from the
    newest down to it), or those older (down to the first attempt); at most ``SCAN_PAGES``
    pages of them."""
    same: list[RunRecord] = []
    before_id = None if newer else run.id
    for _ in range(SCAN_PAGES):
        runs = await scheduler.list_runs(job_id=run.job_id, before_id=before_id, limit=SCAN_PAGE)
        same += [r for r in runs if r.scheduled_for_us == run.scheduled_for_us]
        reached = any(r.id <= run.id for r in runs) if newer else any(r.attempt == 1 for r in same)
        if reached or len(runs) < SCAN_PAGE:
            break
        before_id = runs[-1].id
    return same


def _sent(job: JobRecord, run: RunRecord) -> _SentRequest | None:
    """The request an HTTP target is sent for ``run``: the job's target as it is now, secrets
    masked, with the headers Kairos adds for this run (made by the HTTP executor itself)."""
    target = job.spec.target.masked()
    if not isinstance(target, HttpTarget):
        return None
    call = Call(run.job_id, run.id, run.scheduled_for_us, run.attempt, target)
    made = HttpRequest.of(call, default_timeout_s=0)
    if not isinstance(made, HttpRequest):
        return None
    body = None if made.body is None else made.body.decode(errors="replace")
    return _SentRequest(made.method, made.url, made.headers, body)


def _lag(run: RunRecord) -> int | None:
    """How late the run started after its fire's due time, in microseconds."""
    return None if run.started_us is None else run.started_us - run.scheduled_for_us


async def _run_or_none(scheduler: Scheduler, run_id: str) -> RunRecord | None:
    if not run_id.isdigit() or len(run_id) > 19:
        return None
    try:
        return await scheduler.get_run(int(run_id))
    except RunNotFound:
        return None


async def _job_or_none(scheduler: Scheduler, job_id: str) -> JobRecord | None:
    try:
        return await scheduler.get_job(job_id)
    except JobNotFound:
        return None


def _missing(request: Request, who: Viewer, run_id: str) -> Response:
    context: dict[str, Any] = {"heading": "Run not found"}
    context["message"] = f"There is no run {run_id!r} (its history may have been purged)."
    return page(request, "message.html", who, 404, **context)
