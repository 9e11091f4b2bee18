"""Calling a job's target: the ``Executor`` seam and its implementations."""

from kairos.executors.base import Call, Executor, Outcome

__all__ = ["Call", "Executor", "Outcome"]
