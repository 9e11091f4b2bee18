"""``Kairos``: the scheduler as a library, for FastAPI apps, other ASGI apps and scripts.

One ``Kairos`` is one engine over one database, with its API as a router to include, its web UI
as an ASGI app to mount, and the job operations as methods taking and answering the API's own
models, so a script and the REST API see the same shapes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from fastapi import APIRouter
from pydantic import TypeAdapter, ValidationError
from starlette.types import ASGIApp

from kairos.api.deps import HostAuth
from kairos.api.router import build_router, build_routers
from kairos.api.schemas import JobOut, JobPage, RunOut, RunPage, job_out, run_out
from kairos.auth import Accounts, Authenticator
from kairos.clock import Clock, SystemClock
from kairos.context import Binding, Context
from kairos.engine import Scheduler
from kairos.errors import InvalidField, LifecycleError
from kairos.metrics import build_registry
from kairos.models import JobId, JobSpec, JobState, RunStatus
from kairos.pagination import job_query
from kairos.settings import Settings
from kairos.tasks import TaskRegistry
from kairos.web import ui_app

__all__ = ["Kairos"]

log = logging.getLogger("kairos")

SYSTEM = "system"
"""The audit log's name for changes made through these methods, unless told another."""
_JOB_ID = TypeAdapter[str](JobId)
_F = TypeVar("_F", bound=Callable[..., Any])


class Kairos:
    """Kairos embedded in another program.

    ``database_url`` (or ``settings``, a whole ``Settings``) says where the jobs live; what
    neither sets comes from the ``KAIROS_*`` environment, as for ``kairos serve``. Nothing runs
    until ``start()`` (or ``async with kairos``, or ``FastAPI(lifespan=kairos.lifespan)``).

    Without ``KAIROS_ADMIN_TOKEN``, the first start generates an admin token, stores only its
    hash and hands it to ``on_admin_token`` once (by default: logged once, at WARNING, by the
    ``kairos`` logger).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        scheduler: Scheduler | None = None,
        on_admin_token: Callable[[str], None] | None = None,
    ) -> None:
        if settings is not None and database_url is not None:
            raise ValueError("Kairos: give database_url or settings (with its database_url)")
        if settings is None:
            settings = Settings() if database_url is None else Settings(database_url=database_url)
        self.settings = settings
        self._clock = clock
        self._given_scheduler = scheduler
        self._on_admin_token = on_admin_token or _log_admin_token
        self._binding = Binding()
        self._stack: AsyncExitStack | None = None
        self._router_made = False
        self.tasks = TaskRegistry()
        """The functions python targets may name here (``@kairos.task``)."""

    def task(self, name: str | None = None) -> Callable[[_F], _F]:
        """Register the decorated function as the python task ``name`` (default: its
        ``__name__``); jobs name it in ``{"type": "python", "task": name, ...}`` targets.
        ``InvalidTask`` for a name taken by another function. See ``TaskRegistry.task``."""
        return self.tasks.task(name)

    # Lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the engine (and so the firing of jobs). A second start while running is a
        ``LifecycleError``; a start that fails leaves nothing running."""
        if self._stack is not None:
            raise LifecycleError(
                "This Kairos is already started: start it once (its lifespan, async with, or "
                "start()), and stop it before starting it again"
            )
        self._stack = stack = AsyncExitStack()
        try:
            self._binding.context, generated = await self._open(stack)
        except BaseException:
            self._stack = None
            await stack.aclose()
            raise
        if generated is not None:
            self._on_admin_token(generated)

    async def stop(self) -> None:
        """Stop the engine, waiting for runs in flight as ``kairos serve`` does; routes and
        pages answer 503 until the next start. Stopping a stopped Kairos does nothing."""
        stack, self._stack = self._stack, None
        self._binding.context = None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Runs Kairos for as long as an app: ``FastAPI(lifespan=kairos.lifespan)``, or, in
        the app's own lifespan, ``async with kairos.lifespan(app): ...``."""
        async with self:
            yield

    async def _open(self, stack: AsyncExitStack) -> tuple[Context, str | None]:
        engine = self._given_scheduler or Scheduler.from_settings(
            self.settings, clock=self._clock, tasks=self.tasks
        )
        await stack.enter_async_context(engine)
        clock = self._clock or SystemClock()
        authenticator, generated = await Authenticator.load(engine.store, self.settings, clock)
        metrics, collector = build_registry(engine)
        accounts = Accounts(engine.store, clock)
        return Context(engine, authenticator, accounts, metrics, collector), generated

    # What apps serve ----------------------------------------------------------------------------

    def router(self, *, auth: HostAuth | None = None) -> APIRouter:
        """The whole HTTP API (jobs, runs, the seed's ``/tasks``, users and keys, probes) as a
        router for ``app.include_router(kairos.router(), prefix=...)``. It answers 503 until
        Kairos is started and renders its own errors (``{"detail": ...}``).

        Callers prove who they are with Kairos's tokens and keys, unless ``auth`` is given: a
        FastAPI dependency of the app's that answers a ``kairos.identity.Principal`` (a name
        for the audit log, the scopes it grants) or None for nobody (a 401). It then guards
        every route but ``/healthz``, ``/readyz`` and ``/metrics``.

        One router per Kairos, included once: a second one would serve every route twice and
        give the app's OpenAPI document two operations of each id. Asking again (here or in
        ``routers``) is a ``LifecycleError``."""
        self._claim_router()
        return build_router(self._binding, auth_dependency=auth)

    def routers(self, *, auth: HostAuth | None = None) -> list[APIRouter]:
        """The routes of ``router``, as one router per resource, each to include on its own
        (as ``kairos serve`` does): FastAPI matches an included router's routes twice, once
        to choose it and once to serve, so a request then pays only for its own resource's
        routes twice. Otherwise as ``router``, in place of it."""
        self._claim_router()
        return build_routers(self._binding, auth_dependency=auth)

    def _claim_router(self) -> None:
        if self._router_made:
            raise LifecycleError(
                "Kairos.router() was already called for this Kairos: include its one router "
                "once (a second would serve every route twice, with duplicate OpenAPI "
                "operation ids)"
            )
        self._router_made = True

    def ui(self) -> ASGIApp:
        """The web UI, for ``app.mount(prefix, kairos.ui())`` at any prefix; people sign in
        with Kairos's own users, keys or tokens."""
        return ui_app(self._binding)

    @property
    def scheduler(self) -> Scheduler:
        """The running engine (``NotStarted`` when stopped)."""
        return self._binding.require().scheduler

    @property
    def accounts(self) -> Accounts:
        """Users and API keys (``NotStarted`` when stopped)."""
        return self._binding.require().accounts

    # Jobs ---------------------------------------------------------------------------------------

    async def put_job(
        self, job_id: str, spec: JobSpec | Mapping[str, Any], *, actor: str = SYSTEM
    ) -> JobOut:
        """Create the job or completely replace it, as ``PUT /jobs/{id}``. A spec given as a
        mapping is validated as the API's body is (``pydantic.ValidationError``)."""
        checked = spec if isinstance(spec, JobSpec) else JobSpec.model_validate(spec)
        job, _created = await self.scheduler.put_job(_job_id(job_id), checked, actor=actor)
        return job_out(job, self.scheduler.tasks_served)

    async def get_job(self, job_id: str) -> JobOut:
        """The job (``JobNotFound`` if there is none)."""
        return job_out(await self.scheduler.get_job(job_id), self.scheduler.tasks_served)

    async def list_jobs(
        self,
        *,
        prefix: str | None = None,
        state: JobState | None = None,
        tag: str | None = None,
        sort: Literal["id", "next_run"] = "id",
        cursor: str | None = None,
        limit: int = 100,
    ) -> JobPage:
        """A page of jobs, as ``GET /jobs``; pass ``next_cursor`` back as ``cursor``."""
        query = job_query(prefix=prefix, state=state, tag=tag, sort=sort)
        page = await self.scheduler.job_page(query, limit, cursor)
        return JobPage(
            items=[job_out(job, self.scheduler.tasks_served) for job in page.items],
            next_cursor=page.next_cursor,
        )

    async def pause(self, job_id: str, *, actor: str = SYSTEM) -> JobOut:
        return job_out(
            await self.scheduler.pause_job(job_id, actor=actor), self.scheduler.tasks_served
        )

    async def resume(self, job_id: str, *, actor: str = SYSTEM) -> JobOut:
        """Resume; the schedule continues from now and fires missed while paused are not run."""
        return job_out(
            await self.scheduler.resume_job(job_id, actor=actor), self.scheduler.tasks_served
        )

    async def run_now(self, job_id: str, *, actor: str = SYSTEM) -> RunOut:
        """Start one run now, outside the schedule (also for a paused job)."""
        return run_out(await self.scheduler.run_now(job_id, actor=actor))

    async def delete(self, job_id: str, *, purge_runs: bool = False, actor: str = SYSTEM) -> None:
        """Remove the job; its run history stays unless ``purge_runs``."""
        await self.scheduler.delete_job(job_id, purge_runs=purge_runs, actor=actor)

    async def runs(
        self,
        *,
        job_id: str | None = None,
        status: RunStatus | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> RunPage:
        """A page of runs, newest first, as ``GET /runs`` (``JobNotFound`` for an unknown
        ``job_id``)."""
        page = await self.scheduler.run_page(
            job_id=job_id, status=status, cursor=cursor, limit=limit
        )
        return RunPage(items=[run_out(run) for run in page.items], next_cursor=page.next_cursor)


def _job_id(job_id: str) -> str:
    try:
        return _JOB_ID.validate_python(job_id)
    except ValidationError:
        raise InvalidField(
            ["job_id"], "1-128 of letters, digits and _ . : -, not . or .."
        ) from None


def _log_admin_token(token: str) -> None:
    log.warning(
        "Kairos generated an admin token (shown only now, stored hashed): %s. Send it as "
        "'Authorization: Bearer <token>', or set KAIROS_ADMIN_TOKEN.",
        token,
    )
