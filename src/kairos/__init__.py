"""Kairos: a self-hosted, API-driven job scheduler."""

__version__ = "0.1.0"

__all__ = ["__version__"]
