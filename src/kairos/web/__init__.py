"""The web UI: server-rendered pages (Jinja2) made lively with htmx, served from the package so
it works offline and behind a firewall.

``ui_app`` is an ASGI app of its own, mounted wherever its host likes (``kairos serve`` mounts it
at ``/ui``): every link, form, redirect, asset and cookie path is made from the prefix it is
mounted at (``root_path``), never written out.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from kairos.context import CONTEXT_KEY, Binding
from kairos.errors import KairosError, NotStarted
from kairos.web import accounts, bulk, jobs, overview, pages, runs
from kairos.web.render import STATIC_DIR, page
from kairos.web.session import Forbidden, SignInNeeded

__all__ = ["ui_app"]


def ui_app(binding: Binding) -> ASGIApp:
    """The UI of the Kairos behind ``binding``: its pages, its static files, its error pages."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.include_router(overview.router)
    app.include_router(pages.router)
    app.include_router(jobs.router)
    app.include_router(runs.router)
    app.include_router(accounts.router)
    app.include_router(bulk.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(SignInNeeded, _sign_in)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(KairosError, _failed)
    return _Bound(app, binding)


class _Bound:
    """Puts the context of its Kairos in every request (a 503 page while it is not running)."""

    def __init__(self, app: ASGIApp, binding: Binding) -> None:
        self._app = app
        self._binding = binding

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                scope[CONTEXT_KEY] = self._binding.require()
            except NotStarted as exc:
                response = PlainTextResponse(exc.detail, status_code=exc.status_code)
                await response(scope, receive, send)
                return
        await self._app(scope, receive, send)


async def _sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInNeeded)
    if request.headers.get("HX-Request"):
        return Response(status_code=200, headers={"HX-Redirect": exc.next_url})
    return RedirectResponse(exc.next_url, status_code=303)


async def _forbidden(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, Forbidden)
    viewer = exc.viewer
    return page(request, "message.html", viewer, 403, heading="Not allowed", message=exc.message)


async def _failed(request: Request, exc: Exception) -> HTMLResponse:
    """What a page could not do (the database unreachable, say), said on a page."""
    assert isinstance(exc, KairosError)
    return page(request, "message.html", None, exc.status_code, heading="Error", message=str(exc))
