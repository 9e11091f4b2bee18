"""Rendering pages: the template environment and the helpers every template may call."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from kairos import __version__
from kairos.clock import from_us
from kairos.models import JobRecord, RunRecord
from kairos.triggers.describe import describe
from kairos.web.session import Viewer, root_of

__all__ = ["STATIC_DIR", "page", "relative"]

STATIC_DIR = Path(__file__).with_name("static")
# Scripts only from this server (no inline ones), and no framing by other sites.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
_templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))


def page(
    request: Request,
    template: str,
    viewer: Viewer | None,
    status_code: int = 200,
    /,
    **context: Any,
) -> HTMLResponse:
    def query(**changes: str) -> str:
        """This page's query string with ``changes`` (a change to "" drops that parameter)."""
        merged = {**request.query_params, **changes}
        return urlencode(
            {name: value for name, value in merged.items() if value != "" or name not in changes}
        )

    response: HTMLResponse = _templates.TemplateResponse(
        request,
        template,
        {"viewer": viewer, "query": query, "root": root_of(request), **context},
        status_code=status_code,
        headers=_SECURITY_HEADERS,
    )
    return response


@pass_context
def _static(context: Mapping[str, Any], name: str) -> str:
    return f"{context['root']}/static/{name}?v={__version__}"


def _iso(us: int | None) -> str:
    return "" if us is None else from_us(us).isoformat(timespec="seconds")


def relative(us: int, now_us: int) -> str:
    """How far ``us`` is from ``now_us`` in one rounded-down unit: "in 9 h", "3 min ago"."""
    span = abs(us - now_us) // 1_000_000
    if span < 1:
        return "now"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if span >= size:
            amount = f"{span // size} {unit}"
            break
    return f"in {amount}" if us > now_us else f"{amount} ago"


def _describe(job: JobRecord) -> str:
    words = describe(job.spec.trigger, job.spec.zone)
    zone = job.spec.timezone
    return words if zone == "UTC" or zone in words else f"{words} ({zone})"


def _duration(run: RunRecord) -> str:
    if run.started_us is None or run.finished_us is None:
        return ""
    return _span(run.finished_us - run.started_us)


def _span(us: int | None) -> str:
    """A length of time in words: milliseconds up to ten seconds, then seconds."""
    if us is None:
        return ""
    ms = us / 1000
    return f"{ms:.0f} ms" if abs(ms) < 10_000 else f"{ms / 1000:.1f} s"


def _pretty(detail: str) -> str:
    try:
        return json.dumps(json.loads(detail), indent=2)
    except ValueError:
        return detail


_templates.env.globals.update(
    static=_static,
    iso=_iso,
    relative=relative,
    describe=_describe,
    duration=_duration,
    span=_span,
    pretty=_pretty,
)
