"""The HTTP API: a thin adapter over ``kairos.engine.Scheduler``.

``create_app`` is imported on first use, so that ``kairos.api.schemas`` (the wire shapes, which
``kairos.client`` shares) can be imported without FastAPI's app machinery or the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app"]

if TYPE_CHECKING:
    from kairos.api.app import create_app


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from kairos.api.app import create_app

        return create_app
    raise AttributeError(f"module 'kairos.api' has no attribute {name!r}")
