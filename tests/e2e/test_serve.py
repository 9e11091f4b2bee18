"""Real ``kairos serve`` processes, real HTTP targets, and SIGKILL."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import KairosProcess, TargetProcess, header, wait_until

pytestmark = pytest.mark.e2e


def test_seed_example_create_change_delete(tmp_path: Path) -> None:
    with KairosProcess(f"sqlite:///{tmp_path}/k.db") as server, server.client() as api:
        task = {
            "task_id": "hourly-crawl",
            "crontab": "0 * * * *",
            "target_endpoint": "https://api.example.com/crawler",
        }
        assert api.post("/tasks", json=task).json()["job_id"] == "hourly-crawl"
        hourly = api.get("/jobs/hourly-crawl").json()
        assert datetime.fromisoformat(hourly["next_run_time"]).minute == 0

        assert api.post("/tasks", json=task | {"crontab": "0 2 * * *"}).status_code == 200
        daily = api.get("/jobs/hourly-crawl").json()
        assert datetime.fromisoformat(daily["next_run_time"]).hour == 2
        assert daily["created_at"] == hourly["created_at"]

        assert api.delete("/tasks/hourly-crawl").json() == {"status": "deleted"}
        assert api.delete("/tasks/hourly-crawl").status_code == 404


def test_a_job_fires_calls_its_target_and_keeps_history(
    tmp_path: Path, target: TargetProcess
) -> None:
    with KairosProcess(f"sqlite:///{tmp_path}/k.db") as server, server.client() as api:
        job = {
            "trigger": {"type": "interval", "seconds": 0.5},
            "target": {"url": target.url("/tick"), "body": {"hello": "world"}},
        }
        assert api.put("/jobs/ticker", json=job).status_code == 201
        wait_until(lambda: len(target.deliveries("/tick")) >= 3, 15, what="three ticks")
        first = target.deliveries("/tick")[0]
        assert header(first, "X-Kairos-Job-Id") == "ticker"
        assert header(first, "X-Kairos-Attempt") == "1"
        scheduled = datetime.fromisoformat(header(first, "X-Kairos-Scheduled-For"))
        assert scheduled.tzinfo is not None
        assert json.loads(first["body"]) == {"hello": "world"}

        def succeeded() -> list[dict[str, Any]]:
            runs = api.get("/jobs/ticker/runs").json()["items"]
            return [r for r in runs if r["status"] == "succeeded"]

        wait_until(lambda: len(succeeded()) >= 3, 15, what="three recorded runs")
        run = succeeded()[-1]
        assert run["http_status"] == 200
        assert run["duration_ms"] >= 0
        assert str(run["id"]) in {header(d, "X-Kairos-Run-Id") for d in target.deliveries("/tick")}


def test_sigkill_loses_no_job_no_run_and_no_fire(tmp_path: Path, target: TargetProcess) -> None:
    db = f"sqlite:///{tmp_path}/k.db"
    server = KairosProcess(db, log_path=tmp_path / "kairos.log").start()
    with server.client() as api:
        slow = {
            "trigger": {"type": "date", "run_date": _iso(datetime.now(UTC) + timedelta(seconds=1))},
            "target": {"url": target.url("/slow?delay=60")},
        }
        ticks = {
            "trigger": {"type": "interval", "seconds": 1},
            "target": {"url": target.url("/tick")},
            "coalesce": False,
            "misfire_grace_time": 120,
        }
        api.put("/jobs/slow", json=slow)
        api.put("/jobs/ticks", json=ticks)
        wait_until(lambda: target.deliveries("/slow"), 15, what="the slow call to start")
        wait_until(lambda: len(target.deliveries("/tick")) >= 2, 15, what="two ticks")
    server.kill()
    killed_at = datetime.now(UTC)

    with KairosProcess(db, log_path=tmp_path / "kairos.log") as again, again.client() as api:
        back_at = datetime.now(UTC)
        assert {j["id"] for j in api.get("/jobs").json()["items"]} == {"slow", "ticks"}
        slow_runs = api.get("/jobs/slow/runs").json()["items"]
        # The run the crash cut short is interrupted, and retried as attempt 2 of the same fire.
        assert [(r["attempt"], r["status"]) for r in slow_runs][-1] == (1, "interrupted")
        assert len(slow_runs) == 2
        assert slow_runs[0]["attempt"] == 2
        assert slow_runs[0]["scheduled_for"] == slow_runs[1]["scheduled_for"]

        def ticks_after_restart() -> int:
            return sum(
                1
                for d in target.deliveries("/tick")
                if datetime.fromisoformat(header(d, "X-Kairos-Scheduled-For")) > killed_at
            )

        wait_until(lambda: ticks_after_restart() >= 3, 20, what="ticks after the restart")
        ledger = _all_runs(api, "ticks")

    # The ledger has every fire second exactly once, across the crash. A fire the crash caught
    # (in its call, or claimed a moment ahead of it) is interrupted and retried as attempt 2.
    scheduled = [r["scheduled_for"] for r in ledger if r["attempt"] == 1]
    assert [f for f, n in Counter(scheduled).items() if n > 1] == []
    interrupted = {r["scheduled_for"] for r in ledger if r["status"] == "interrupted"}
    retried = [r["scheduled_for"] for r in ledger if r["attempt"] == 2]
    assert sorted(retried) == sorted(interrupted)
    moments = sorted(datetime.fromisoformat(f) for f in scheduled)
    gaps = {(b - a).total_seconds() for a, b in pairwise(moments)}
    assert gaps == {1.0}, f"a fire was lost from the ledger: {sorted(gaps)}"
    # The target saw no attempt of a fire twice, and every fire recorded as succeeded reached it.
    delivered = [
        (
            datetime.fromisoformat(header(d, "X-Kairos-Scheduled-For")),
            header(d, "X-Kairos-Attempt"),
        )
        for d in target.deliveries("/tick")
    ]
    assert [f for f, n in Counter(delivered).items() if n > 1] == []
    succeeded = {
        (datetime.fromisoformat(r["scheduled_for"]), str(r["attempt"]))
        for r in ledger
        if r["status"] == "succeeded"
    }
    assert succeeded <= set(delivered)
    statuses = {"succeeded", "interrupted", "running", "scheduled", "skipped"}
    assert {r["status"] for r in ledger} <= statuses
    # A fire that falls due while the retry of the fire the crash cut short still runs is
    # skipped, as max_instances (1) says: one of the fires caught up at the restart; no other
    # fire may be.
    for run in (r for r in ledger if r["status"] == "skipped"):
        assert "max_instances" in run["error"]
        assert datetime.fromisoformat(run["scheduled_for"]) - back_at < timedelta(seconds=3)


def _all_runs(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000} | ({"cursor": cursor} if cursor else {})
        page = api.get(f"/jobs/{job_id}/runs", params=params).json()
        runs += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return runs


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def test_worker_processes_make_the_calls_and_die_with_their_server(
    tmp_path: Path, target: TargetProcess
) -> None:
    env = {"KAIROS_HTTP_WORKERS": "2"}
    server = KairosProcess(f"sqlite:///{tmp_path}/k.db", env=env).start()
    try:
        assert server.proc is not None
        with server.client() as api:
            _fire_every_200_ms(api, target, "via-workers", calls=5)
            runs = api.get("/jobs/via-workers/runs").json()["items"]
            assert any(r["status"] == "succeeded" and r["http_status"] == 200 for r in runs)
        workers = _workers(server.proc.pid)
        assert len(workers) == 2
    finally:
        server.kill()
    # Killed without a word, the server leaves no worker behind: each sees its socket close.
    wait_until(lambda: not any(_alive(pid) for pid in workers), 15, what="the workers to exit")


@pytest.mark.parametrize("setting", [None, "0"])
def test_serve_starts_two_workers_where_it_has_two_cores_unless_told(
    tmp_path: Path, target: TargetProcess, setting: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAIROS_HTTP_WORKERS", raising=False)
    env = {} if setting is None else {"KAIROS_HTTP_WORKERS": setting}
    server = KairosProcess(f"sqlite:///{tmp_path}/k.db", env=env).start()
    try:
        assert server.proc is not None
        with server.client() as api:
            _fire_every_200_ms(api, target, "default", calls=3)
        workers = _workers(server.proc.pid)
    finally:
        server.stop()
    expected = 2 if setting is None and len(os.sched_getaffinity(0)) >= 2 else 0
    assert len(workers) == expected


def _fire_every_200_ms(api: httpx.Client, target: TargetProcess, job_id: str, calls: int) -> None:
    """Create job ``job_id`` and wait until its target has had ``calls`` calls."""
    job = {
        "trigger": {"type": "interval", "seconds": 0.2},
        "target": {"url": target.url(f"/{job_id}")},
    }
    assert api.put(f"/jobs/{job_id}", json=job).status_code == 201
    wait_until(lambda: len(target.deliveries(f"/{job_id}")) >= calls, 15, what=f"{calls} calls")


def _workers(pid: int) -> list[int]:
    """The HTTP worker processes of server ``pid``. Each thread lists the children it started;
    the workers may be started from any of them."""
    tasks = Path(f"/proc/{pid}/task").glob("*/children")
    children = [int(child) for task in tasks for child in task.read_text().split()]
    return [p for p in children if b"worker_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing
