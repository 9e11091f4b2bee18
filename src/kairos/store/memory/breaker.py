"""The circuit breaker's changes on a memory store's ``Tables``: a job's failures counted, the job
paused or resumed as the engine's ``Verdict`` says, and the probe of a job it paused set again."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from kairos.identity import Actor
from kairos.models import JobRecord
from kairos.store.claims import ClaimPolicy, Verdict
from kairos.store.memory.tables import Tables

__all__ = ["judge", "rearm_probes", "set_paused"]

_BREAKER = "circuit-breaker"


def judge(t: Tables, job_id: str, verdict: Verdict) -> str | None:
    """Apply the verdict of one of a job's fires to its circuit breaker, with the times and
    reason it gives; return the pause reason if this verdict tripped it."""
    job = t.jobs.get(job_id)
    if job is None:
        return None
    at_us = verdict.decided_us
    if verdict.probe and not verdict.failed:
        fire_us, run_us = verdict.resume
        values = {"failures": 0, "pause_reason": None, "next_fire_us": fire_us}
        set_paused(t, job_id, False, _tripped, at_us, next_run_us=run_us, **values)
        return None
    if verdict.probe:
        if _tripped(job):
            probe_us = verdict.next_probe_us
            moved = dataclasses.replace(job, next_fire_us=probe_us, next_run_us=probe_us)
            t.put_job(dataclasses.replace(moved, pause_reason=verdict.pause_reason))
        return None
    if not verdict.failed:
        if job.failures:
            t.put_job(dataclasses.replace(job, failures=0))
        return None
    if job.spec.paused:
        return None
    count = job.failures + 1
    t.put_job(dataclasses.replace(job, failures=count))
    if verdict.limit is None or count < verdict.limit:
        return None
    reason, probe = verdict.pause_reason, verdict.next_probe_us
    paused = set_paused(
        t,
        job_id,
        True,
        _running,
        at_us,
        pause_reason=reason,
        next_fire_us=probe,
        next_run_us=probe,
    )
    return reason if paused else None


def set_paused(
    t: Tables,
    job_id: str,
    paused: bool,
    condition: Callable[[JobRecord], bool],
    now_us: int,
    **values: Any,
) -> bool:
    """Pause or resume a job from within the store (its spec says so too) at ``now_us``, if
    ``condition`` holds of it (return whether it did), recording who did it in the audit log."""
    job = t.jobs.get(job_id)
    if job is None or not condition(job):
        return False
    spec = job.spec.model_copy(update={"paused": paused})
    updated_us = max(job.updated_us + 1, now_us)
    t.put_job(dataclasses.replace(job, spec=spec, updated_us=updated_us, **values))
    action, detail = ("job.pause", values["pause_reason"]) if paused else ("job.resume", None)
    by = Actor(_BREAKER, now_us)
    t.write_audit(by, action, job_id, {"reason": detail} if detail else None)
    return True


def rearm_probes(t: Tables, job_ids: Iterable[str], now_us: int, policy: ClaimPolicy) -> None:
    """A probe of a job the circuit breaker paused was interrupted for good: its job has no
    next fire, so it would stay paused until resumed by hand. Set the next probe where
    ``policy`` gives one."""
    for job_id in job_ids:
        job = t.jobs.get(job_id)
        if job is None or not _tripped(job) or job.next_run_us is not None:
            continue
        probe_us = policy.next_probe_us(job, now_us)
        if probe_us is not None:
            t.put_job(dataclasses.replace(job, next_fire_us=probe_us, next_run_us=probe_us))


def _tripped(job: JobRecord) -> bool:
    return job.pause_reason is not None


def _running(job: JobRecord) -> bool:
    return not job.spec.paused
