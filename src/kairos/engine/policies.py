"""Misfire, coalesce, max_instances, capacity and retry policies: which due work runs, which
does not, and when a failed attempt is tried again.

Pure decisions over a job, a clock reading and its ``Slots``; ``Planner`` is the store's
``ClaimPolicy``: the store asks it inside the transaction that claims the work, so a plan and
the advance of the job's schedule commit together.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable

from kairos import triggers
from kairos.clock import from_us, to_us
from kairos.models import JobRecord, JobSpec, RunStatus
from kairos.store import FirePlan, PlannedRun, QueuedRun, Slots
from kairos.triggers.base import Trigger

__all__ = ["Planner", "retry_due_us", "time_left_s", "too_late"]

# A catch-up pass walks at most this many fires of one job; the rest waits for the next pass.
_WALK_CAP = 1_000
# After this many ``missed`` rows for one job in one pass, the older missed fires share one row
# (a 1-second job down for a week would otherwise write 600,000 rows).
_MISSED_RECORD_CAP = 100
_TRIGGER_CACHE_SIZE = 50_000


def too_late(spec: JobSpec, late_us: int) -> str | None:
    """Why a fire ``late_us`` past its due time may no longer start, or None if it may."""
    grace = spec.misfire_grace_time
    if grace is None or late_us <= grace * 1_000_000:
        return None
    late_s = late_us / 1_000_000
    return f"fire was {late_s:.3f} s late, more than misfire_grace_time ({grace:g} s)"


def _skipped_misses(first_us: int, next_us: int | None, why: str | None) -> PlannedRun:
    """One row for the missed fires past ``_MISSED_RECORD_CAP``: from ``first_us`` up to the
    first fire still within the grace (``next_us``)."""
    until = "on" if next_us is None else f"up to {from_us(next_us).isoformat()} (not included)"
    return PlannedRun(
        first_us,
        RunStatus.MISSED,
        f"{why}; so were the fires from here {until}, recorded as this one row",
    )


class Planner:
    """Turns due work into runs and a due job into its next fire (the store's ``ClaimPolicy``).
    Caches built triggers by job version."""

    def __init__(self, uniform: Callable[[float, float], float] = random.uniform) -> None:
        self._uniform = uniform
        self._triggers: OrderedDict[tuple[str, int], Trigger] = OrderedDict()

    def trigger_for(self, job: JobRecord) -> Trigger:
        key = (job.id, job.updated_us)
        trigger = self._triggers.get(key)
        if trigger is None:
            trigger = triggers.build(job.spec.trigger, job.spec.zone)
            self._triggers[key] = trigger
            if len(self._triggers) > _TRIGGER_CACHE_SIZE:
                self._triggers.popitem(last=False)
        return trigger

    def next_probe_us(self, job: JobRecord, now_us: int) -> int | None:
        """When the circuit breaker probes ``job`` next after a failure (or an interrupted
        probe) at ``now_us``: ``auto_resume_after`` later; None without it."""
        after = job.spec.auto_resume_after
        return None if after is None else now_us + int(after * 1_000_000)

    def first_fire(self, spec: JobSpec, trigger: Trigger, now_us: int) -> tuple[int, int] | None:
        """(nominal, due) of the fire a job created or resumed at ``now_us`` waits for."""
        fire = trigger.first_fire(from_us(now_us))
        return None if fire is None else self._with_jitter(spec, to_us(fire))

    def plan_due(self, job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
        """Decide the fate of every fire of ``job`` due at ``now_us``; of a job claimed ahead
        (due a moment after ``now_us``), of its next fire only.

        A fire over ``max_instances`` is skipped if runs in flight before it was due fill the
        slots (as in APScheduler), and queued behind the runs of this same pass otherwise: a
        catch-up backlog, or a retry started with it, runs one after another and loses nothing.
        Fires that neither start nor are recorded stay due for the next pass. A job whose next
        fire cannot be computed gets a plan that pauses it, saying why.
        """
        try:
            return self._plan(job, now_us, slots)
        except (ArithmeticError, ValueError) as exc:
            # A schedule at the edge of the calendar (stored before dates were range checked)
            # would fail every claim while it is due: its job is paused instead.
            return FirePlan(pause_reason=f"paused: its next fire cannot be computed ({exc})")

    def admit_queued(self, run: QueuedRun, job: JobRecord, now_us: int, slots: Slots) -> PlannedRun:
        """Start a queued run (run now, retry, catch-up) or record it too late, as a due fire
        is; but never skip it: over ``max_instances`` it waits for a slot. A manual run is
        never too late."""
        if not run.manual:
            late = too_late(job.spec, now_us - run.due_us)
            if late is not None:
                return PlannedRun(run.scheduled_for_us, RunStatus.MISSED, late)
        if _full(job.spec, slots) or slots.budget <= 0:
            return PlannedRun(run.scheduled_for_us, RunStatus.SCHEDULED)
        return PlannedRun(run.scheduled_for_us, RunStatus.RUNNING)

    def _plan(self, job: JobRecord, now_us: int, slots: Slots) -> FirePlan:
        assert job.next_fire_us is not None and job.next_run_us is not None
        if job.spec.paused:
            # Only a job its circuit breaker paused has a fire while paused: the probe. One run,
            # then nothing more until its verdict resumes the job or sets the next probe.
            if slots.budget <= 0:
                return FirePlan([], job.next_fire_us, job.next_run_us)
            status = RunStatus.SCHEDULED if _full(job.spec, slots) else RunStatus.RUNNING
            return FirePlan([PlannedRun(job.next_fire_us, status)], None, None)
        trigger = self.trigger_for(job)
        if job.next_run_us > now_us:
            # Claimed a moment ahead of its due time: just this fire, which will be on time. If
            # its job is busy, it is decided when due: the busy run may be done by then.
            if _full(job.spec, slots) or slots.budget <= 0:
                return FirePlan([], job.next_fire_us, job.next_run_us)
            return self._advance(
                job.spec,
                trigger,
                [PlannedRun(job.next_fire_us, RunStatus.RUNNING)],
                job.next_fire_us,
            )
        if job.spec.coalesce:
            return self._plan_coalesced(job, trigger, now_us, slots)
        return self._plan_each(job, trigger, now_us, slots)

    def _plan_coalesced(
        self, job: JobRecord, trigger: Trigger, now_us: int, slots: Slots
    ) -> FirePlan:
        assert job.next_fire_us is not None and job.next_run_us is not None
        fire_us = job.next_fire_us
        following = trigger.next_after_us(fire_us)
        if following is not None and following <= now_us:
            # A backlog (Kairos was down): its latest fire, found without walking every one.
            latest = trigger.latest_at_or_before(from_us(now_us), from_us(fire_us))
            if latest is not None:
                fire_us = to_us(latest)
                following = trigger.next_after_us(fire_us)
        due_us = job.next_run_us if fire_us == job.next_fire_us else fire_us
        run = self._decide(job.spec, fire_us, now_us - due_us, slots)
        if run is None:
            return FirePlan([], job.next_fire_us, job.next_run_us)
        runs = [run]
        if fire_us != job.next_fire_us:
            # The fires passed over leave one row that says so, at the first of them.
            merged = f"coalesced: the fires from here up to {from_us(fire_us).isoformat()} "
            merged += "were merged into that one (coalesce: true)"
            runs.insert(0, PlannedRun(job.next_fire_us, RunStatus.SKIPPED, merged))
        return FirePlan(runs, *self._jittered_or_none(job.spec, following))

    def _plan_each(self, job: JobRecord, trigger: Trigger, now_us: int, slots: Slots) -> FirePlan:
        assert job.next_fire_us is not None and job.next_run_us is not None
        runs: list[PlannedRun] = []
        fire_us: int | None = job.next_fire_us
        due_us = job.next_run_us
        missed = 0
        while fire_us is not None and due_us <= now_us and len(runs) < _WALK_CAP:
            run = self._decide(job.spec, fire_us, now_us - due_us, slots)
            if run is None:
                return FirePlan(runs, fire_us, due_us)
            if run.status is RunStatus.MISSED:
                missed += 1
                if missed > _MISSED_RECORD_CAP:
                    first_us, fire_us = fire_us, self._skip_misses(job.spec, trigger, now_us)
                    runs.append(_skipped_misses(first_us, fire_us, run.error))
                    due_us = fire_us if fire_us is not None else now_us
                    continue
            elif run.status is RunStatus.RUNNING:
                slots = Slots(slots.running, slots.started + 1, slots.budget - 1)
            runs.append(run)
            fire_us = trigger.next_after_us(fire_us)
            due_us = fire_us if fire_us is not None else now_us
        if fire_us is not None and due_us <= now_us:
            return FirePlan(runs, fire_us, due_us)
        return FirePlan(runs, *self._jittered_or_none(job.spec, fire_us))

    def _advance(
        self, spec: JobSpec, trigger: Trigger, runs: list[PlannedRun], last_us: int
    ) -> FirePlan:
        return FirePlan(runs, *self._jittered_or_none(spec, trigger.next_after_us(last_us)))

    @staticmethod
    def _decide(spec: JobSpec, fire_us: int, late_us: int, slots: Slots) -> PlannedRun | None:
        late = too_late(spec, late_us)
        if late is not None:
            return PlannedRun(fire_us, RunStatus.MISSED, late)
        if slots.running >= spec.max_instances:
            return PlannedRun(
                fire_us,
                RunStatus.SKIPPED,
                f"max_instances ({spec.max_instances}) runs of this job were still running",
            )
        if _full(spec, slots):
            return PlannedRun(fire_us, RunStatus.SCHEDULED)
        if slots.budget <= 0:
            return None
        return PlannedRun(fire_us, RunStatus.RUNNING)

    @staticmethod
    def _skip_misses(spec: JobSpec, trigger: Trigger, now_us: int) -> int | None:
        assert spec.misfire_grace_time is not None
        horizon_us = now_us - int(spec.misfire_grace_time * 1_000_000)
        return trigger.next_after_us(horizon_us - 1)

    def _jittered_or_none(
        self, spec: JobSpec, fire_us: int | None
    ) -> tuple[int | None, int | None]:
        if fire_us is None:
            return None, None
        return self._with_jitter(spec, fire_us)

    def _with_jitter(self, spec: JobSpec, fire_us: int) -> tuple[int, int]:
        jitter = getattr(spec.trigger, "jitter", None)
        if not jitter:
            return fire_us, fire_us
        return fire_us, fire_us + int(self._uniform(0, jitter) * 1_000_000)


def _full(spec: JobSpec, slots: Slots) -> bool:
    """Whether the job's runs in flight and started in this pass fill ``max_instances``."""
    return slots.running + slots.started >= spec.max_instances


def retry_due_us(
    spec: JobSpec,
    attempt: int,
    scheduled_for_us: int,
    now_us: int,
    retry_after_s: float | None = None,
    *,
    uniform: Callable[[float, float], float] = random.uniform,
) -> int | None:
    """When attempt ``attempt + 1`` of a fire whose attempt ``attempt`` just failed in a way
    worth retrying should start; None if the job's retry policy or deadline says no more.

    The n-th wait is ``initial_delay * multiplier ** (n - 1)``, at most ``max_delay``, moved
    at random by up to ``jitter`` of itself; a target's ``Retry-After`` can only lengthen it.
    """
    policy = spec.retry
    if policy is None or attempt >= policy.max_attempts:
        return None
    delay = min(policy.max_delay, policy.initial_delay * policy.multiplier ** (attempt - 1))
    if policy.jitter:
        delay = min(policy.max_delay, delay * uniform(1 - policy.jitter, 1 + policy.jitter))
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    due_us = now_us + int(delay * 1_000_000)
    if spec.deadline is not None and due_us >= scheduled_for_us + int(spec.deadline * 1e6):
        return None
    return due_us


def time_left_s(spec: JobSpec, scheduled_for_us: int, now_us: int) -> float | None:
    """Seconds left before the fire's deadline (<= 0: passed); None if it has none."""
    if spec.deadline is None:
        return None
    return (scheduled_for_us - now_us) / 1_000_000 + spec.deadline
