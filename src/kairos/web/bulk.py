"""Acting on many jobs at once from the jobs list: the jobs ticked and one action (pause, resume,
run now, delete), each job one change through the ``Scheduler``, audited as if done alone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kairos.context import context_of
from kairos.engine import Scheduler
from kairos.errors import JobNotFound
from kairos.identity import Scope
from kairos.web.render import page
from kairos.web.session import ViewerDep, root_of

__all__ = ["router"]

router = APIRouter()
MOST = 100
"""Jobs one request may act on: a page of the list at most."""

_Act = Callable[[Scheduler, str, str], Awaitable[object]]
_ACTIONS: dict[str, tuple[_Act, str]] = {
    "pause": (lambda s, job_id, actor: s.pause_job(job_id, actor=actor), "Paused"),
    "resume": (lambda s, job_id, actor: s.resume_job(job_id, actor=actor), "Resumed"),
    "run": (lambda s, job_id, actor: s.run_now(job_id, actor=actor), "Queued a run of"),
    "delete": (lambda s, job_id, actor: s.delete_job(job_id, actor=actor), "Deleted"),
}


@router.post("/jobs", response_class=HTMLResponse)
async def act_on_many(request: Request, who: ViewerDep) -> Response:
    """Form fields ``action`` and ``ids`` (repeated); back to the list it came from, which says
    what was done. A job deleted meanwhile is named, not an error for the others."""
    who.need(Scope.JOBS_WRITE)
    submitted = await request.form()
    action = submitted.get("action")
    ids = [value for value in submitted.getlist("ids") if isinstance(value, str)]
    problem = _problem(action, ids)
    if problem:
        return page(request, "message.html", who, 400, heading="Nothing was done", message=problem)
    assert isinstance(action, str)
    act, done_words = _ACTIONS[action]
    scheduler = context_of(request).scheduler
    missing = []
    for job_id in dict.fromkeys(ids):
        try:
            await act(scheduler, job_id, who.principal.name)
        except JobNotFound:
            missing.append(job_id)
    done = len(dict.fromkeys(ids)) - len(missing)
    note = f"{done_words} {done} job{'' if done == 1 else 's'}."
    if missing:
        note += " Not found (deleted meanwhile?): " + ", ".join(missing) + "."
    back = {name: value for name, value in request.query_params.items() if name != "note"}
    return RedirectResponse(
        f"{root_of(request)}/jobs?{urlencode(back | {'note': note})}", status_code=303
    )


def _problem(action: object, ids: list[str]) -> str:
    if action not in _ACTIONS:
        return "action: one of " + ", ".join(_ACTIONS) + "."
    if not ids:
        return "ids: select at least one job."
    if len(ids) > MOST:
        return f"ids: at most {MOST} jobs at once."
    return ""
