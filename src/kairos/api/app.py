"""The app ``kairos serve`` runs: an embedded ``Kairos`` in a FastAPI app of its own, with what
only the standalone server has (request size limits, ``GET /`` to the UI, offline docs)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from kairos import __version__
from kairos.api.body import BodyGuard
from kairos.api.docs import add_offline_docs
from kairos.api.forwarded import Forwarded
from kairos.clock import Clock
from kairos.engine import Scheduler
from kairos.settings import Settings

__all__ = ["create_app"]

StartupHook = Callable[[FastAPI, str | None], None]
"""Called once the app is ready, with the admin token generated at this start (or None)."""


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    on_started: StartupHook | None = None,
    scheduler: Scheduler | None = None,
) -> FastAPI:
    """The API at ``/`` and the web UI at ``/ui`` over ``scheduler`` (default: the one
    ``settings`` describe), which the app's lifespan starts and stops. Once started, the app's
    ``state`` holds its ``scheduler`` and ``accounts`` for the code that made it."""
    # Imported here: kairos.library is built on this package.
    from kairos.library import Kairos

    generated: list[str] = []
    kairos = Kairos(
        settings=settings, clock=clock, scheduler=scheduler, on_admin_token=generated.append
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with kairos.lifespan(app):
            app.state.scheduler, app.state.accounts = kairos.scheduler, kairos.accounts
            if on_started is not None:
                on_started(app, generated.pop() if generated else None)
            yield

    app = FastAPI(
        title="Kairos",
        version=__version__,
        summary="Self-hosted, API-driven job scheduler",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load their assets from a CDN: add_offline_docs serves them
        redoc_url=None,
        # FastAPI's OpenTelemetry bridge asks the environment whether a provider is configured
        # on every request (about a tenth of a short request's time); Kairos exports its own
        # Prometheus metrics and logs.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.add_middleware(
        BodyGuard,
        max_bytes=settings.max_request_bytes,
        max_batch_bytes=settings.max_batch_bytes,
    )
    if settings.trusted_proxies:
        app.add_middleware(Forwarded, trusted=settings.trusted_proxies)
    for router in kairos.routers():
        app.include_router(router)
    add_offline_docs(app)
    app.add_api_route("/", _to_ui, include_in_schema=False)
    app.add_api_route("/ui", _ui_home, include_in_schema=False)
    app.mount("/ui", kairos.ui())
    return app


async def _to_ui(request: Request) -> Response:
    return RedirectResponse(f"{_root(request)}/ui", status_code=307)


async def _ui_home(request: Request) -> Response:
    return RedirectResponse(f"{_root(request)}/ui/", status_code=303)


def _root(request: Request) -> str:
    """The path this app is served under (an ASGI ``root_path``, a trusted proxy's prefix)."""
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/")
