"""The HTTP API: a thin adapter over ``kairos.engine.Scheduler``."""

from kairos.api.app import create_app

__all__ = ["create_app"]
