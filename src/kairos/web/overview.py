"""The overview, where the UI lands: runs ended in the last hour and day by outcome, runs in
flight and queued, failing and tripped jobs, the next fires, this node's lag and the nodes, all
from ``Scheduler.overview`` (summaries the store keeps and the first entries of an index: the
same work with ten jobs or a million).

Its figures are live: the page asks for them again (same URL, the fragment named by
``HX-Target``) while it is visible; see ``static/kairos.js``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kairos.context import context_of
from kairos.identity import Scope
from kairos.web.render import page
from kairos.web.session import ViewerDep, root_of

__all__ = ["router"]

router = APIRouter()
LISTED = 10
"""Failing jobs, tripped jobs and next fires the page names (the first of each)."""
_LANDINGS = (
    ("overview", (Scope.RUNS_READ, Scope.JOBS_READ)),
    ("jobs", (Scope.JOBS_READ,)),
    ("runs", (Scope.RUNS_READ,)),
)
"""Where the UI's root leads: the first of these pages the viewer may see."""


@router.get("/")
async def home(request: Request, who: ViewerDep) -> Response:
    """The overview, or for a viewer without its scopes the first page they may see."""
    landing = next((path for path, scopes in _LANDINGS if who.may(*scopes)), "jobs")
    return RedirectResponse(f"{root_of(request)}/{landing}", status_code=303)


@router.get("/overview", response_class=HTMLResponse)
async def overview(request: Request, who: ViewerDep) -> Response:
    who.need(Scope.RUNS_READ)
    who.need(Scope.JOBS_READ)
    seen = await context_of(request).scheduler.overview(limit=LISTED)
    hour, day = seen.ended_last_hour, seen.ended_last_day
    live = request.headers.get("HX-Request") and request.headers.get("HX-Target") == "overview"
    return page(
        request,
        "_overview.html" if live else "overview.html",
        who,
        seen=seen,
        # Every ended status, in the order the summaries give them.
        ended=[(status.value, count, day[status]) for status, count in hour.items()],
        now_us=seen.at_us,
        section="Overview",
    )
