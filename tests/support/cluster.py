"""What the end-to-end cluster tests check of the fires a recording target received, and of the
replicas that made them, whatever database the replicas share."""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from tests.support.server import KairosProcess, TargetProcess, header, wait_until

__all__ = [
    "TICKS",
    "burst_fires_once_across_three_replicas",
    "duplicates",
    "fire_key",
    "missing_fires",
    "node_id_of",
    "readyz",
    "run_nodes",
    "sigkill_of_a_replica_loses_no_fire",
    "wait_covered",
]

TICKS = {
    "trigger": {"type": "interval", "seconds": 1},
    "coalesce": False,
    "misfire_grace_time": 120,
}
"""Every second, each fire kept for two minutes: a fire that a dead node held is still owed."""


def fire_key(delivery: dict[str, Any]) -> tuple[str, str, str]:
    return (
        header(delivery, "X-Kairos-Job-Id"),
        header(delivery, "X-Kairos-Scheduled-For"),
        header(delivery, "X-Kairos-Attempt"),
    )


def duplicates(deliveries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [key for key, n in Counter(map(fire_key, deliveries)).items() if n > 1]


def missing_fires(
    target: TargetProcess, jobs: list[str], horizon: datetime
) -> list[tuple[str, datetime | None]]:
    """The fires not delivered, as (job, scheduled time): every second of every job from its
    first fire up to ``horizon``; (job, None) for a job with no delivery past ``horizon`` yet."""
    seen: dict[str, set[datetime]] = {job: set() for job in jobs}
    for delivery in target.deliveries("/tick"):
        job = header(delivery, "X-Kairos-Job-Id")
        if job in seen:
            seen[job].add(datetime.fromisoformat(header(delivery, "X-Kairos-Scheduled-For")))
    missing: list[tuple[str, datetime | None]] = []
    for job, fires in seen.items():
        if not fires or max(fires) < horizon:
            missing.append((job, None))
            continue
        fire = min(fires)
        while fire <= horizon:
            if fire not in fires:
                missing.append((job, fire))
            fire += timedelta(seconds=1)
    return missing


def wait_covered(
    target: TargetProcess,
    jobs: list[str],
    horizon: datetime,
    ledger: KairosProcess,
    *,
    outage: tuple[datetime, datetime] | None = None,
) -> None:
    """Wait until no fire up to ``horizon`` is missing; on timeout, name the missing fires and
    what the run ledger holds for them.

    ``outage``: when the database was down (from, to). A fire due then may find its job's last
    run still recorded as running, its outcome waiting on another replica until that replica
    can write again: such a fire is recorded skipped for ``max_instances``, as documented, and
    counts as accounted for. Every other fire must be delivered."""

    def unaccounted() -> list[tuple[str, datetime | None]]:
        gaps = missing_fires(target, jobs, horizon)
        if not gaps or outage is None:
            return gaps
        skipped = {
            (run["job_id"], datetime.fromisoformat(run["scheduled_for"]))
            for run in _runs(ledger)
            if run["status"] == "skipped" and (run["error"] or "").startswith("max_instances")
        }
        began, ended = outage
        return [
            gap
            for gap in gaps
            if gap not in skipped or gap[1] is None or not began <= gap[1] <= ended
        ]

    try:
        wait_until(lambda: not unaccounted(), 40, what="every fire delivered")
    except AssertionError:
        gaps = unaccounted()
        held = [
            {k: run.get(k) for k in ("job_id", "scheduled_for", "attempt", "status", "error")}
            for run in _runs(ledger)
            if (run["job_id"], datetime.fromisoformat(run["scheduled_for"])) in gaps
        ]
        raise AssertionError(f"missing fires: {gaps[:20]}; their jobs' runs: {held[:60]}") from None


def _runs(ledger: KairosProcess) -> list[dict[str, Any]]:
    with ledger.client() as api:
        items: list[dict[str, Any]] = api.get("/runs", params={"limit": 1000}).json()["items"]
    return items


def node_id_of(process: KairosProcess) -> str:
    log = (process.log_path.read_text() if process.log_path else "").splitlines()
    line = next(line for line in log if line.strip().startswith("Node"))
    return line.split()[-1]


def run_nodes(process: KairosProcess) -> list[str]:
    with process.client() as api:
        items = api.get("/runs", params={"limit": 1000}).json()["items"]
    return [run["node_id"] for run in items]


def readyz(process: KairosProcess) -> int | None:
    try:
        return httpx.get(f"{process.base_url}/readyz", timeout=2).status_code
    except httpx.HTTPError:
        return None


def burst_fires_once_across_three_replicas(
    database: str, target: TargetProcess, log_dir: Path
) -> None:
    """1,000 jobs due at one instant, on three replicas sharing ``database``: each fires once.
    Each replica holds at most 400 calls at once and each call takes 2 s, so no replica can
    take the whole burst alone: the others must claim their share, at the same rows at once,
    and never take a fire twice."""
    capped = {"KAIROS_MAX_CONCURRENT_RUNS": "400"}
    with ExitStack() as stack:
        replicas = [
            stack.enter_context(
                KairosProcess(database, env=capped, log_path=log_dir / f"node{i}.log")
            )
            for i in range(3)
        ]
        due = datetime.now(UTC) + timedelta(seconds=8)
        body = {
            "trigger": {"type": "date", "run_date": due.isoformat()},
            "target": {"url": target.url("/burst?delay=2")},
            "misfire_grace_time": 300,
        }
        batch = {"jobs": [{"id": f"burst-{i}", **body} for i in range(1000)]}
        with replicas[0].client() as api:
            assert api.post("/jobs:batch", json=batch).json() == {"created": 1000, "replaced": 0}
        assert datetime.now(UTC) < due, "loading took longer than the margin"

        wait_until(lambda: len(target.deliveries("/burst")) >= 1000, 60, what="1,000 deliveries")
        deliveries = target.deliveries("/burst")
        assert duplicates(deliveries) == []
        ids = {header(d, "X-Kairos-Job-Id") for d in deliveries}
        assert ids == {f"burst-{i}" for i in range(1000)}
        wait_until(lambda: len(run_nodes(replicas[1])) >= 1000, 30, what="every run recorded")
        assert len(set(run_nodes(replicas[1]))) >= 2, Counter(run_nodes(replicas[1]))


def sigkill_of_a_replica_loses_no_fire(
    replicas: list[KairosProcess], target: TargetProcess, *, lease_s: float = 15
) -> None:
    """Ten jobs every second on ``replicas``; once every replica has fired, the last is
    SIGKILLed: the others take its runs over within the lease (``lease_s``), and every second
    of every job is then delivered exactly once, with none missing after the kill."""
    jobs = [f"tick-{i}" for i in range(10)]
    with replicas[0].client() as api:
        for job_id in jobs:
            api.put(f"/jobs/{job_id}", json=TICKS | {"target": {"url": target.url("/tick")}})
    wait_until(lambda: len(target.deliveries("/tick")) >= 50, 30, what="ticks from every node")
    victim = replicas[-1]
    victim_id = node_id_of(victim)
    victim.kill()
    killed_at = datetime.now(UTC)

    def gone() -> bool:
        with replicas[0].client() as api:
            return victim_id not in {n["id"] for n in api.get("/cluster").json()["nodes"]}

    wait_until(gone, lease_s + 5, what="the dead node to be taken over")
    wait_covered(target, jobs, killed_at + timedelta(seconds=lease_s + 1), replicas[0])
    assert duplicates(target.deliveries("/tick")) == []
