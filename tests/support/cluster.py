"""What the end-to-end cluster tests check of the fires a recording target received, and of the
replicas that made them, whatever database the replicas share."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import httpx
from tests.support.server import KairosProcess, TargetProcess, header, wait_until

__all__ = [
    "duplicates",
    "fire_key",
    "missing_fires",
    "node_id_of",
    "readyz",
    "run_nodes",
    "wait_covered",
]


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
    target: TargetProcess, jobs: list[str], horizon: datetime, ledger: KairosProcess
) -> None:
    """Wait until no fire up to ``horizon`` is missing; on timeout, name the missing fires and
    what the run ledger holds for them."""
    try:
        wait_until(
            lambda: not missing_fires(target, jobs, horizon), 40, what="every fire delivered"
        )
    except AssertionError:
        gaps = missing_fires(target, jobs, horizon)
        with ledger.client() as api:
            runs = api.get("/runs", params={"limit": 1000}).json()["items"]
        held = [
            {k: run.get(k) for k in ("job_id", "scheduled_for", "attempt", "status", "error")}
            for run in runs
            if (run["job_id"], datetime.fromisoformat(run["scheduled_for"])) in gaps
        ]
        raise AssertionError(f"missing fires: {gaps[:20]}; their jobs' runs: {held[:60]}") from None


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
