"""The FastAPI application factory; the lifespan starts and stops every long-lived part."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kairos import __version__, web
from kairos.api.body import BodyGuard
from kairos.api.routes import audit, auth, cluster, jobs, ops, runs, targets, tasks, triggers
from kairos.auth import Accounts, Authenticator
from kairos.clock import Clock, SystemClock
from kairos.engine import Scheduler
from kairos.errors import KairosError
from kairos.metrics import build_registry
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
    """The API and web UI over ``scheduler`` (default: the one ``settings`` describe), which
    the app's lifespan starts and stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = scheduler or Scheduler.from_settings(settings, clock=clock)
        async with engine:
            now = clock or SystemClock()
            store = engine.store
            app.state.authenticator, generated = await Authenticator.load(store, settings, now)
            app.state.accounts = Accounts(store, now)
            app.state.scheduler = engine
            app.state.metrics, app.state.collector = build_registry(engine)
            if on_started is not None:
                on_started(app, generated)
            yield

    app = FastAPI(
        title="Kairos",
        version=__version__,
        summary="Self-hosted, API-driven job scheduler",
        lifespan=lifespan,
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
    app.add_exception_handler(KairosError, _render_error)
    app.add_exception_handler(RequestValidationError, _render_invalid)
    # Routes are matched in order, and matching one costs a few microseconds: the most called
    # (jobs, runs) go first. No two routers' paths overlap, so the order changes nothing else.
    for module in (jobs, runs, ops, auth, tasks, triggers, cluster, targets, audit):
        app.include_router(module.router)
    web.install(app)
    return app


async def _render_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KairosError)
    return JSONResponse({"detail": exc.body()}, status_code=exc.status_code, headers=exc.headers())


async def _render_invalid(_request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, except that an input holding NaN or infinity (which Python's JSON reader
    takes and JSON cannot carry) is shown as text instead of failing the answer with a 500."""
    assert isinstance(exc, RequestValidationError)
    errors = jsonable_encoder(exc.errors())
    for error in errors:
        try:
            json.dumps(error, allow_nan=False)
        except ValueError:
            error["input"] = str(error.get("input"))
            error.pop("ctx", None)
    return JSONResponse({"detail": errors}, status_code=422)
