"""The circuit breaker's verdicts: the engine words every pause and sets every breaker time;
the store only applies them."""

from __future__ import annotations

from typing import Any

from kairos.engine.aftermath import Aftermath
from kairos.engine.policies import Planner
from kairos.executors.base import Outcome
from kairos.models import JobRecord, JobSpec, RunRecord, RunStatus
from kairos.store import StartedRun, Verdict

T0 = 1_800_000_000_000_000
S = 1_000_000
FAILED = Outcome(False, 500, "HTTP 500")


def started(failures: int = 0, **spec: Any) -> StartedRun:
    body = {
        "trigger": {"type": "interval", "seconds": 60},
        "target": {"url": "http://127.0.0.1:9/"},
        "max_consecutive_failures": 3,
        **spec,
    }
    job = JobRecord("j", JobSpec.model_validate(body), T0, T0, T0, T0, failures=failures)
    return StartedRun(RunRecord(9, "j", T0, 1, RunStatus.RUNNING), job, T0)


def verdict(run: StartedRun, outcome: Outcome) -> Verdict | None:
    aftermath = Aftermath(Planner(), notify=lambda _: None, on_fire_end=lambda *_: None)
    return aftermath.ended(run, outcome, T0 + S, None)


def test_a_failure_carries_the_pause_reason_and_probe_time_should_it_trip() -> None:
    tripping = verdict(started(auto_resume_after=30), FAILED)
    assert tripping is not None
    assert (tripping.failed, tripping.limit, tripping.probe) == (True, 3, False)
    assert (tripping.decided_us, tripping.next_probe_us) == (T0 + S, T0 + 31 * S)
    assert tripping.pause_reason == (
        "paused by the circuit breaker after 3 failed fires in a row; the last: run 9 (HTTP 500)"
    )


def test_a_failed_probe_says_so_and_a_success_pauses_nothing() -> None:
    probe = verdict(started(paused=True), FAILED)
    assert probe is not None
    assert probe.probe is True
    assert probe.next_probe_us is None  # no auto_resume_after: paused until resumed by hand
    assert probe.pause_reason == "the circuit breaker's probe failed: run 9 (HTTP 500)"
    success = verdict(started(failures=2), Outcome(True, 200))
    assert success is not None
    assert (success.failed, success.pause_reason) == (False, None)
    assert verdict(started(), Outcome(True, 200)) is None  # nothing to tell the breaker
