"""Delivery to targets that cannot take everything at once: a small accept queue, an outage, slow
answers, calls that hang. Every fire reaches its target exactly once or its run says why not, and
one target's trouble never holds up the jobs of another.

The targets are ``ThreadedTarget`` (the standard library's threaded server, listen backlog 5)
unless a test needs one that accepts everything. Targets that must count as different hosts
listen on different loopback addresses (127.0.0.1, 127.0.0.2).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import KairosProcess, TargetProcess, header, wait_until
from tests.support.target import Delivery, ThreadedTarget

pytestmark = pytest.mark.e2e

FINAL = {"succeeded", "failed", "missed", "skipped", "interrupted"}
NOT_RUN = {"missed", "skipped"}


def test_a_thousand_fires_at_one_instant_all_reach_a_small_target(tmp_path: Path) -> None:
    """1,000 calls due together, to a server that queues 5 connections: none lost or doubled."""
    db = f"sqlite:///{tmp_path}/k.db"
    with (
        ThreadedTarget() as target,
        KairosProcess(db, log_path=tmp_path / "kairos.log") as server,
        server.client() as api,
    ):
        due = _at(5)
        jobs = {f"burst-{i}": _date_job({"url": target.url("/burst")}, due) for i in range(1000)}
        _create(api, jobs)
        assert datetime.now(UTC) < due, "loading took longer than the margin"
        _wait_then_check(lambda: _finished(api, jobs), 90)
        runs = _runs(api)
    _assert_delivered_once(target.deliveries(), runs, dict.fromkeys(jobs, due))


@pytest.mark.postgres
def test_three_replicas_deliver_every_fire_to_a_small_target_once(
    replicas: list[KairosProcess],
) -> None:
    with ThreadedTarget() as target, replicas[0].client() as api:
        due = _at(5)
        jobs = {f"burst-{i}": _date_job({"url": target.url("/burst")}, due) for i in range(300)}
        _create(api, jobs)
        assert datetime.now(UTC) < due, "loading took longer than the margin"
        _wait_then_check(lambda: _finished(api, jobs), 90)
        runs = _runs(api)
    _assert_delivered_once(target.deliveries(), runs, dict.fromkeys(jobs, due))


def test_fires_due_while_the_target_refuses_connections_reach_it_when_it_is_back(
    tmp_path: Path,
) -> None:
    """Nothing listens on the target's port for 3 s, then it is back: the fires due in those
    3 s reach it within their misfire grace (default 60 s), each once."""
    target = ThreadedTarget()  # its port is bound but does not listen: calls are refused
    try:
        db = f"sqlite:///{tmp_path}/k.db"
        with KairosProcess(db, log_path=tmp_path / "kairos.log") as server, server.client() as api:
            down_from = _at(2)
            due = {
                f"outage-{i}": down_from + timedelta(seconds=0.5 * (1 + i % 5)) for i in range(30)
            }
            url = target.url("/outage")
            _create(api, {job: _date_job({"url": url}, when) for job, when in due.items()})
            back_at = down_from + timedelta(seconds=3)
            wait_until(lambda: datetime.now(UTC) >= back_at, 10, interval=0.01, what="3 s down")
            target.start()
            _wait_then_check(lambda: _finished(api, due), 60)
            runs = _runs(api)
    finally:
        target.stop()
    deliveries = target.deliveries()
    _assert_delivered_once(deliveries, runs, due)
    assert max(_lateness(d) for d in deliveries) < timedelta(seconds=60)


def test_a_slow_target_does_not_hold_up_a_fast_one(tmp_path: Path) -> None:
    """600 calls of 2 s each to one target (more than the 500 runs in flight by default) leave
    a job every second calling another target all its fires, on time."""
    db = f"sqlite:///{tmp_path}/k.db"
    with (
        ThreadedTarget() as slow,
        ThreadedTarget("127.0.0.2") as fast,
        KairosProcess(db, log_path=tmp_path / "kairos.log") as server,
        server.client() as api,
    ):
        every_second = {"trigger": {"type": "interval", "seconds": 1}}
        fast_job = every_second | {"target": {"url": fast.url("/fast")}}
        assert api.put("/jobs/fast", json=fast_job).status_code == 201
        due = _at(3)
        slow_call = {"url": slow.url("/slow?delay=2")}
        _create(api, {f"slow-{i}": _date_job(slow_call, due) for i in range(600)})
        window = _seconds_after(due, 10)
        _wait_then_check(lambda: _done_past(api, "fast", window[-1]), 40)
        runs = [r for r in _runs(api, "/jobs/fast/runs") if _when(r) in window]
    fires = {_when(r): r for r in runs}
    absent = [f"{s:%H:%M:%S}" for s in window if s not in fires]
    assert absent == [], f"fires of the fast job with no run: {absent}"
    assert Counter(r["status"] for r in runs) == {"succeeded": len(window)}, _outcomes(runs)
    late = [r for r in runs if _started(r) - _when(r) >= timedelta(seconds=1)]
    assert late == [], f"runs of the fast job started 1 s late or more: {_outcomes(late)}"
    received = {_when_delivery(d): _lateness(d) for d in fast.deliveries()}
    lateness = [received.get(s) for s in window]
    assert all(t is not None and t < timedelta(seconds=1) for t in lateness), lateness


def test_calls_hanging_on_one_target_do_not_block_other_jobs(
    tmp_path: Path, target: TargetProcess
) -> None:
    """600 calls that get no answer (more than the 500 runs in flight by default): a job every
    second calling another target gets all its fires, and a fire that is not run has a run that
    says why, never none."""
    db = f"sqlite:///{tmp_path}/k.db"
    with (
        ThreadedTarget("127.0.0.2") as control,
        KairosProcess(db, log_path=tmp_path / "kairos.log") as server,
        server.client() as api,
    ):
        grace = {"misfire_grace_time": 5}
        control_job = {
            "trigger": {"type": "interval", "seconds": 1},
            "target": {"url": control.url("/control")},
            "coalesce": False,
            **grace,
        }
        assert api.put("/jobs/control", json=control_job).status_code == 201
        due = _at(3)
        hanging = {"url": target.url("/hang?delay=3600"), "timeout": 600}
        hang = {f"hang-{i}": _date_job(hanging, due, **grace) for i in range(600)}
        _create(api, hang)
        window = _seconds_after(due, 12)
        _wait_then_check(lambda: _done_past(api, "control", window[-1]), 20)
        control_runs = [r for r in _runs(api, "/jobs/control/runs") if _when(r) in window]

        def unaccounted() -> list[str]:
            return _unaccounted(_runs(api), hang, target)

        _wait_then_check(lambda: not unaccounted(), 15)
        hang_problems = unaccounted()
    fires = {_when(r) for r in control_runs}
    absent = [f"{s:%H:%M:%S}" for s in window if s not in fires]
    assert absent == [], f"fires of the control job with no run: {absent}"
    assert [r for r in control_runs if r["status"] in NOT_RUN and not r["error"]] == []
    assert hang_problems == [], f"{len(hang_problems)} hanging fires: {hang_problems[:5]}"
    delivered = {_when_delivery(d) for d in control.deliveries()}
    got = [s for s in window if s in delivered]
    assert len(got) == len(window), f"the control job got {len(got)} of {len(window)} fires"
    assert Counter(r["status"] for r in control_runs) == {"succeeded": len(window)}


def _unaccounted(runs: list[dict[str, Any]], jobs: dict[str, Any], at: TargetProcess) -> list[str]:
    """What is wrong with the fires of ``jobs`` (one each, calling ``at`` where they hang): each
    must be running with its call at the target, or not run with a reason."""
    delivered = {header(d, "X-Kairos-Run-Id") for d in at.deliveries("/hang")}
    by_job = {r["job_id"]: r for r in runs if r["job_id"] in jobs}
    problems = [f"{job}: no run" for job in jobs if job not in by_job]
    for job, run in by_job.items():
        if run["status"] == "running" and str(run["id"]) in delivered:
            continue
        if run["status"] in NOT_RUN and run["error"]:
            continue
        problems.append(f"{job}: {run['status']} ({run['error']})")
    return problems


def _assert_delivered_once(
    deliveries: list[Delivery], runs: list[dict[str, Any]], due: dict[str, datetime]
) -> None:
    """The one fire of every job in ``due`` reached the target once, at its due time, with its
    headers; one run of each succeeded and none failed."""
    reached = Counter(header(d, "X-Kairos-Job-Id") for d in deliveries)
    statuses = Counter(r["status"] for r in runs)
    errors = Counter(r["error"] for r in runs if r["status"] != "succeeded")
    summary = (
        f"{len(reached)} of {len(due)} fires reached the target; runs {dict(statuses)}; "
        f"most common errors {errors.most_common(3)}"
    )
    assert set(reached) == set(due), summary
    keys = Counter(header(d, "Idempotency-Key") for d in deliveries)
    assert [key for key, n in keys.items() if n > 1] == [], "a fire was delivered twice"
    assert statuses["failed"] == 0, summary
    succeeded = {str(r["id"]): r["job_id"] for r in runs if r["status"] == "succeeded"}
    assert sorted(Counter(succeeded.values()).items()) == [(job, 1) for job in sorted(due)]
    for delivery in deliveries:
        job = header(delivery, "X-Kairos-Job-Id")
        scheduled = header(delivery, "X-Kairos-Scheduled-For")
        assert datetime.fromisoformat(scheduled) == due[job]
        assert header(delivery, "Idempotency-Key") == f"{job}@{scheduled}"
        assert int(header(delivery, "X-Kairos-Attempt")) >= 1
        assert succeeded.get(header(delivery, "X-Kairos-Run-Id")) == job


def _wait_then_check(condition: Callable[[], bool], timeout_s: float) -> None:
    """Wait for ``condition`` at most ``timeout_s``; on timeout carry on: the checks that follow
    fail, and say what is missing better than a timeout would."""
    with contextlib.suppress(AssertionError):
        wait_until(condition, timeout_s, interval=0.5)


def _at(seconds: float) -> datetime:
    """The instant ``seconds`` from now, to the millisecond."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _seconds_after(moment: datetime, count: int) -> list[datetime]:
    """The ``count`` whole seconds after ``moment``: the fires of a job every second."""
    first = moment.replace(microsecond=0) + timedelta(seconds=1)
    return [first + timedelta(seconds=i) for i in range(count)]


def _date_job(target: dict[str, Any], due: datetime, **policies: Any) -> dict[str, Any]:
    return {"trigger": {"type": "date", "run_date": due.isoformat()}, "target": target, **policies}


def _create(api: httpx.Client, jobs: dict[str, dict[str, Any]]) -> None:
    batch = {"jobs": [{"id": job_id, **body} for job_id, body in jobs.items()]}
    assert api.post("/jobs:batch", json=batch).json() == {"created": len(jobs), "replaced": 0}


def _runs(api: httpx.Client, path: str = "/runs") -> list[dict[str, Any]]:
    """Every run under ``path`` (``/runs`` or ``/jobs/{id}/runs``), newest first."""
    runs: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = api.get(path, params=params).json()
        runs += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return runs


def _finished(api: httpx.Client, jobs: dict[str, Any]) -> bool:
    """Whether every job in ``jobs`` has a finished run."""
    return {r["job_id"] for r in _runs(api) if r["status"] in FINAL} >= set(jobs)


def _done_past(api: httpx.Client, job_id: str, last: datetime) -> bool:
    """Whether a run of ``job_id`` scheduled for ``last`` or later has finished."""
    recent = api.get(f"/jobs/{job_id}/runs", params={"limit": 20}).json()["items"]
    return any(_when(r) >= last and r["status"] in FINAL for r in recent)


def _when(run: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(run["scheduled_for"])


def _started(run: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(run["started_at"])


def _when_delivery(delivery: Delivery) -> datetime:
    return datetime.fromisoformat(header(delivery, "X-Kairos-Scheduled-For"))


def _lateness(delivery: Delivery) -> timedelta:
    """From the fire's scheduled time until the target received its call."""
    return datetime.fromtimestamp(delivery.received_us / 1e6, UTC) - _when_delivery(delivery)


def _outcomes(runs: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(r["scheduled_for"], r["status"], r["error"]) for r in runs]
