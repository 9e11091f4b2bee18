"""Signing in and out, and the pages that only show: runs, the cluster, the audit log."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlparse

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from kairos.context import context_of
from kairos.errors import InvalidField, JobNotFound, KairosError, TooManyAttempts, Unauthorized
from kairos.identity import Scope
from kairos.models import RunStatus
from kairos.pagination import id_cursor
from kairos.web.render import page
from kairos.web.session import ViewerDep, check_origin, end_session, root_of, start_session

__all__ = ["router"]

router = APIRouter()
PAGE = 50


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "") -> Response:
    return page(request, "login.html", None, next=_safe(request, next), username="", error=None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    token: Annotated[str, Form(max_length=4096)] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """Password sign-in (as ``POST /auth/token``, slowed down alike), or a token pasted in."""
    check_origin(request)
    authenticator = context_of(request).authenticator
    client = request.client.host if request.client else "unknown"
    max_age: int | None = None
    try:
        if token:
            await authenticator.authenticate(token)
            session = token
        else:
            issued = await authenticator.sign_in(username, password, None, client)
            session, max_age = issued.access_token, issued.expires_in
    except (Unauthorized, TooManyAttempts) as exc:
        status = exc.status_code
        context = {"next": _safe(request, next), "username": username, "error": exc.detail}
        return page(request, "login.html", None, status, **context)
    response = RedirectResponse(_safe(request, next), status_code=303)
    start_session(request, response, session, max_age)
    return response


@router.post("/logout")
async def logout(request: Request, _viewer: ViewerDep) -> Response:
    response = RedirectResponse(f"{root_of(request)}/login", status_code=303)
    end_session(request, response)
    return response


@router.get("/runs", response_class=HTMLResponse)
async def runs(
    request: Request,
    who: ViewerDep,
    job_id: str = "",
    status: str = "",
    cursor: str | None = None,
) -> Response:
    who.need(Scope.RUNS_READ)
    scheduler = context_of(request).scheduler
    context = {
        "job_id": job_id,
        "status": status,
        "statuses": [s.value for s in RunStatus],
        "cursor": cursor,
    }
    try:
        chosen = RunStatus(status) if status else None
        found = await scheduler.run_page(
            job_id=job_id or None, status=chosen, cursor=_ours(cursor), limit=PAGE
        )
    except (ValueError, KairosError) as exc:
        message = f"No job {job_id!r}." if isinstance(exc, JobNotFound) else _message(exc)
        return page(request, "runs.html", who, 400, runs=[], error=message, **context)
    live = request.headers.get("HX-Request") and request.headers.get("HX-Target") == "run-list"
    return page(
        request,
        "_runs.html" if live else "runs.html",
        who,
        runs=found.items,
        show_job=True,
        next_cursor=found.next_cursor,
        section="Runs",
        error=None,
        **context,
    )


@router.get("/cluster", response_class=HTMLResponse)
async def cluster(request: Request, who: ViewerDep) -> Response:
    who.need(Scope.ADMIN)
    scheduler = context_of(request).scheduler
    nodes = await scheduler.list_nodes()
    return page(
        request,
        "cluster.html",
        who,
        nodes=nodes,
        this_node=scheduler.node_id,
        lease=scheduler.node_lease_s,
        section="Cluster",
    )


@router.get("/audit", response_class=HTMLResponse)
async def audit(
    request: Request,
    who: ViewerDep,
    target: Annotated[str, Query(max_length=200)] = "",
    actor: Annotated[str, Query(max_length=200)] = "",
    cursor: str | None = None,
) -> Response:
    who.need(Scope.ADMIN)
    scheduler = context_of(request).scheduler
    records = await scheduler.audit_page(
        target=target or None, actor=actor or None, cursor=_ours(cursor), limit=PAGE
    )
    return page(
        request,
        "audit.html",
        who,
        records=records.items,
        target=target,
        actor=actor,
        next_cursor=records.next_cursor,
        section="Audit log",
    )


def _safe(request: Request, target: str) -> str:
    """Only a path of this UI (else its root, which leads to the viewer's landing page): never
    an open redirect to another site."""
    root = root_of(request)
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not parsed.path.startswith(f"{root}/"):
        return f"{root}/"
    return target


def _message(exc: Exception) -> str:
    if isinstance(exc, InvalidField):
        return f"{exc.loc[-1] if exc.loc else 'input'}: {exc.message}"
    return exc.detail if isinstance(exc, KairosError) else str(exc)


def _ours(cursor: str | None) -> str | None:
    """Where a page of runs or audit records starts; a cursor that is not ours: the newest."""
    try:
        id_cursor(cursor)
    except InvalidField:
        return None
    return cursor
