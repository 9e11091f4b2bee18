"""The whole HTTP API of one Kairos as one router, for ``kairos serve``'s app or any other."""

from __future__ import annotations

from fastapi import APIRouter

from kairos.api.deps import HostAuth, host_auth
from kairos.api.routes import (
    apply,
    audit,
    auth,
    cluster,
    jobs,
    ops,
    overview,
    runs,
    secrets,
    targets,
    tasks,
    triggers,
)
from kairos.api.routing import bind_routes
from kairos.context import Binding

__all__ = ["build_router", "build_routers"]

# Routes are matched in order, and matching one costs a few microseconds: the most called
# (jobs, runs) go first. No two routers' paths overlap, so the order changes nothing else.
_MODULES = (
    jobs,
    runs,
    ops,
    auth,
    tasks,
    triggers,
    cluster,
    overview,
    targets,
    audit,
    apply,
    secrets,
)
_PROBES = (ops,)
"""Open to probes and scrapers: with the app's own authentication, the only routes that do
not go through it."""


def build_routers(binding: Binding, *, auth_dependency: HostAuth | None = None) -> list[APIRouter]:
    """Every route of the API, bound to ``binding``, as one router per resource. With
    ``auth_dependency``, the app's own dependency names the caller of every route but the
    probes (``/healthz``, ``/readyz``, ``/metrics``), in place of Kairos's bearer tokens."""
    binding.host_auth = auth_dependency is not None
    routers = []
    for module in _MODULES:
        bound = bind_routes([module.router], binding)
        if auth_dependency is not None and module not in _PROBES:
            guarded = APIRouter()
            guarded.include_router(bound, dependencies=[host_auth(auth_dependency)])
            bound = guarded
        routers.append(bound)
    return routers


def build_router(binding: Binding, *, auth_dependency: HostAuth | None = None) -> APIRouter:
    """``build_routers`` as one router."""
    parts = build_routers(binding, auth_dependency=auth_dependency)
    if auth_dependency is None:
        return APIRouter(routes=[route for part in parts for route in part.routes])
    router = APIRouter()
    for part in parts:
        router.include_router(part)
    return router
