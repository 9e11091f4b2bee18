"""A claim policy built around a test's own plan function, for store tests that pin what a
claim does with a given plan."""

from __future__ import annotations

from collections.abc import Callable

from kairos.engine.policies import Planner
from kairos.models import JobRecord
from kairos.store import FirePlan, PlannedRun, QueuedRun, Slots

PlanDue = Callable[[JobRecord, int, Slots], FirePlan]


class PlanPolicy:
    """Plans due jobs with ``plan``; admits queued runs as the engine does."""

    def __init__(self, plan: PlanDue) -> None:
        self._plan = plan
        self._planner = Planner()

    def plan_due(self, job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
        return self._plan(job, now_us, slots)

    def next_probe_us(self, job: JobRecord, now_us: int) -> int | None:
        return self._planner.next_probe_us(job, now_us)

    def admit_queued(self, run: QueuedRun, job: JobRecord, now_us: int, slots: Slots) -> PlannedRun:
        return self._planner.admit_queued(run, job, now_us, slots)
