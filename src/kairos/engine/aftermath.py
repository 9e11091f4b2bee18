"""What the end of a fire sets off besides its run row: the circuit breaker's verdict, the
failure and pause webhooks, and the run-retention draw."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kairos.clock import from_us
from kairos.engine.notifier import Event
from kairos.engine.policies import Planner
from kairos.executors.base import Outcome
from kairos.logs import run_fields
from kairos.models import JobSpec, RunStatus
from kairos.store import FinishedRun, StartedRun, Verdict

__all__ = ["Aftermath"]

log = logging.getLogger("kairos.breaker")


class Aftermath:
    def __init__(
        self,
        planner: Planner,
        *,
        notify: Callable[[Event], None],
        on_fire_end: Callable[[str, JobSpec], None],
    ) -> None:
        self._planner = planner
        self._notify = notify
        self._on_fire_end = on_fire_end
        self._tripwires: dict[int, tuple[StartedRun, dict[str, Any]]] = {}
        """Failed runs whose outcome may trip their job's circuit breaker, until written."""

    def ended(
        self, started: StartedRun, outcome: Outcome, now_us: int, retry_due_us: int | None
    ) -> Verdict | None:
        """An attempt ended (``retry_due_us``: another follows). Tell whom it concerns, and
        return the circuit breaker's verdict to record with it, if the fire is over."""
        run = started.run
        over = retry_due_us is None
        verdict = self._verdict(started, outcome, now_us) if over and not run.manual else None
        if over and not outcome.succeeded:
            info = {
                "id": run.id,
                "scheduled_for": from_us(run.scheduled_for_us).isoformat(),
                "attempt": run.attempt,
                "manual": run.manual,
                "status": RunStatus.FAILED.value,
                "http_status": outcome.code,
                "error": outcome.error,
            }
            self._notify(Event("failure", started.job, info, outcome.error or "failed"))
            if verdict is not None and verdict.failed and verdict.limit is not None:
                self._tripwires[run.id] = (started, info)
        self._on_fire_end(started.job.id, started.job.spec)
        return verdict

    def not_called(self, started: StartedRun) -> None:
        """A fire ended without a call (``missed`` waiting for its host): no verdict, no
        webhook, since the target did nothing wrong; only the history grows."""
        self._on_fire_end(started.job.id, started.job.spec)

    def written(self, outcomes: list[FinishedRun], paused: dict[int, str]) -> None:
        """``outcomes`` were written and paused the jobs in ``paused`` (run id -> reason):
        tell their pause webhooks."""
        if not self._tripwires:
            return
        for finished in outcomes:
            tripwire = self._tripwires.pop(finished.run_id, None)
            if tripwire is not None and finished.run_id in paused:
                started, info = tripwire
                run, reason = started.run, paused[finished.run_id]
                self._notify(Event("pause", started.job, info, reason))
                fields = run_fields(run.job_id, run.id, run.scheduled_for_us, run.attempt)
                log.warning("job paused: %s", reason, extra=fields)

    def _verdict(self, started: StartedRun, outcome: Outcome, now_us: int) -> Verdict | None:
        """What the end of a fire means for its job's circuit breaker; None when nothing. The
        store applies it as it stands, with the times and the pause reason it gives."""
        job, spec = started.job, started.job.spec
        probe = spec.paused  # only a job the breaker paused fires while paused
        if not probe and (
            job.failures == 0 if outcome.succeeded else spec.max_consecutive_failures is None
        ):
            return None
        resume: tuple[int | None, int | None] = (None, None)
        if probe and outcome.succeeded:
            unpaused = spec.model_copy(update={"paused": False})
            first = self._planner.first_fire(unpaused, self._planner.trigger_for(job), now_us)
            resume = first or (None, None)
        return Verdict(
            failed=not outcome.succeeded,
            limit=spec.max_consecutive_failures,
            probe=probe,
            decided_us=now_us,
            next_probe_us=self._planner.next_probe_us(job, now_us),
            resume=resume,
            pause_reason=None if outcome.succeeded else _pause_reason(started, outcome),
        )


def _pause_reason(started: StartedRun, outcome: Outcome) -> str:
    """Why a failed fire pauses its job, should its verdict trip the breaker (or keep a probed
    job paused); the breaker trips when the failures reach the job's limit."""
    what = f"run {started.run.id} ({outcome.error})"
    if started.job.spec.paused:
        return f"the circuit breaker's probe failed: {what}"
    limit = started.job.spec.max_consecutive_failures
    return f"paused by the circuit breaker after {limit} failed fires in a row; the last: {what}"
