"""The web UI at ``/ui``: server-rendered pages (Jinja2) made lively with htmx, served from the
package so it works offline and behind a firewall."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from kairos.web import jobs, pages
from kairos.web.render import STATIC_DIR, page
from kairos.web.session import Forbidden, SignInNeeded

__all__ = ["install"]


def install(app: FastAPI) -> None:
    """Mount the UI's pages, its static files and its error pages on ``app``."""
    router = APIRouter(prefix="/ui", include_in_schema=False)
    router.include_router(pages.router)
    router.include_router(jobs.router)
    app.include_router(router)
    app.add_api_route("/ui", _home, include_in_schema=False)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.add_exception_handler(SignInNeeded, _sign_in)
    app.add_exception_handler(Forbidden, _forbidden)


async def _home() -> Response:
    return RedirectResponse("/ui/jobs", status_code=303)


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInNeeded)
    if request.headers.get("HX-Request"):
        return Response(status_code=200, headers={"HX-Redirect": exc.next_url})
    return RedirectResponse(exc.next_url, status_code=303)


async def _forbidden(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, Forbidden)
    return page(request, "message.html", None, 403, heading="Not allowed", message=exc.message)
