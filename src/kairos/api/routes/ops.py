"""Health, readiness and metrics: open to probes and scrapers without a token."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kairos.api.deps import SchedulerDep
from kairos.api.routing import KairosRoute
from kairos.context import context_of

__all__ = ["router"]

router = APIRouter(route_class=KairosRoute, tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 while the process lives."""
    return {"status": "ok"}


@router.get(
    "/readyz", responses={503: {"description": "The store cannot be written, or is unreachable"}}
)
async def readyz(scheduler: SchedulerDep) -> Response:
    """200 when the store can be written (a probe at most once a second) and this node's
    heartbeat is current; 503 otherwise, with the reason."""
    reason = await scheduler.unready()
    if reason is not None:
        return JSONResponse({"status": "unavailable", "detail": reason}, status_code=503)
    return JSONResponse({"status": "ready", "node_id": scheduler.node_id})


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    context = context_of(request)
    await context.collector.refresh()
    return Response(generate_latest(context.metrics), media_type=CONTENT_TYPE_LATEST)
