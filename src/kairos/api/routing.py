"""``KairosRoute``: every API route's class. It puts its Kairos's context in the request, refuses
a JSON body that is not text (``kairos.api.text``), and renders Kairos's errors itself, so the
routes answer alike in ``kairos serve`` and in an app that embeds them and registered no
exception handler of its own.

The route modules declare their routes once, at import; ``bind_routes`` gives one Kairos its
own copies, whose class carries that Kairos's ``Binding``. The class, not an attribute of the
route, because FastAPI's ``include_router`` either keeps the routes it is given or makes new
ones of the same class: either way the binding travels with them, and no dependency is solved
per request to find it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar

from fastapi import APIRouter, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from kairos.api.text import check_text, is_json
from kairos.context import CONTEXT_KEY, Binding
from kairos.errors import KairosError

__all__ = ["Handler", "KairosRoute", "bind_routes", "render_error", "render_invalid"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class KairosRoute(APIRoute):
    """A route of Kairos's API. Unbound (``binding`` None) until ``bind_routes`` copies it."""

    binding: ClassVar[Binding | None] = None

    def get_route_handler(self) -> Handler:
        endpoint = self.endpoint_handler()

        async def handle(request: Request) -> Response:
            try:
                request.scope[CONTEXT_KEY] = self._binding().require()
                if is_json(request.headers.get("content-type")):
                    check_text(await request.body())  # the route reads the body kept
                return await endpoint(request)
            except ClientDisconnect:
                # The client went away before its body was whole: nobody reads the answer,
                # and it is no error of the server's.
                return Response(status_code=400)
            except KairosError as exc:
                return render_error(exc)
            except RequestValidationError as exc:
                return render_invalid(exc)

        return handle

    def endpoint_handler(self) -> Handler:
        """What answers the request once its context is in place: FastAPI's handler, which
        a subclass may precede with a faster path."""
        return super().get_route_handler()

    def _binding(self) -> Binding:
        binding = type(self).binding
        if binding is None:
            raise RuntimeError(f"{self.path} is served unbound: serve Kairos.router()'s routes")
        return binding


def bind_routes(routers: Iterable[APIRouter], binding: Binding) -> APIRouter:
    """One router holding copies of every route of ``routers``, bound to ``binding``. Each
    copy keeps all the original says (path, dependencies, OpenAPI details)."""
    classes: dict[type[KairosRoute], type[KairosRoute]] = {}
    routes = []
    for router in routers:
        for route in router.routes:
            if not isinstance(route, KairosRoute):
                raise TypeError(f"{route!r} is not a KairosRoute (declare route_class)")
            kind = type(route)
            if kind not in classes:
                classes[kind] = type(kind.__name__, (kind,), {"binding": binding})
            bound = copy.copy(route)
            bound.__class__ = classes[kind]
            routes.append(bound)
    return APIRouter(routes=list(routes))


def render_error(exc: KairosError) -> JSONResponse:
    return JSONResponse({"detail": exc.body()}, status_code=exc.status_code, headers=exc.headers())


def render_invalid(exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, except that an input holding NaN or infinity (which Python's JSON reader
    takes and JSON cannot carry) is shown as text instead of failing the answer with a 500."""
    errors = jsonable_encoder(exc.errors())
    for error in errors:
        try:
            json.dumps(error, allow_nan=False)
        except ValueError:
            error["input"] = str(error.get("input"))
            error.pop("ctx", None)
    return JSONResponse({"detail": errors}, status_code=422)
