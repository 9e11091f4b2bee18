"""Calling a job's target: the ``Executor`` seam and its implementations."""

from __future__ import annotations

from kairos.executors.base import Call, Executor, Outcome
from kairos.executors.http import HttpExecutor
from kairos.executors.workers import WorkerPoolExecutor
from kairos.settings import Settings

__all__ = ["Call", "Executor", "Outcome", "executor_for"]


def executor_for(settings: Settings) -> Executor:
    """In-process HTTP calls, or ``KAIROS_HTTP_WORKERS`` worker processes making them."""
    if settings.http_workers:
        return WorkerPoolExecutor(settings.http_workers, HttpExecutor.options(settings))
    return HttpExecutor.from_settings(settings)
