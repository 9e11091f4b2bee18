"""Calling a job's target: the ``Executor`` seam and its implementations."""

from __future__ import annotations

import os

from kairos.executors.base import Call, Executor, Outcome
from kairos.executors.http import HttpExecutor
from kairos.executors.workers import WorkerPoolExecutor
from kairos.settings import Settings

__all__ = ["Call", "Executor", "Outcome", "default_http_workers", "executor_for"]


def executor_for(settings: Settings) -> Executor:
    """In-process HTTP calls (``KAIROS_HTTP_WORKERS`` 0 or unset), or worker processes."""
    if settings.http_workers:
        return WorkerPoolExecutor(settings.http_workers, HttpExecutor.options(settings))
    return HttpExecutor.from_settings(settings)


def default_http_workers() -> int:
    """``kairos serve``'s HTTP workers when none are set: one where this process may use two
    cores or more (calls and schedule then run side by side: on 2 cores a burst is delivered
    about a third faster), none on one core, where a worker could only take turns with the
    scheduler."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if (cores or 1) >= 2 else 0
