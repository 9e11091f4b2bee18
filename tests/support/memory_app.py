"""Kairos's app on the memory store, built by a server that loads it (``uvicorn --factory``)."""

from __future__ import annotations

from fastapi import FastAPI

from kairos.api import create_app
from kairos.settings import Settings


def app() -> FastAPI:
    return create_app(Settings(database_url="memory://", admin_token="memory-app-admin-token"))
