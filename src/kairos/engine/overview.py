"""``Overview``: the state of the whole installation at a glance, for the operator's overview
(``Scheduler.overview``, ``GET /overview``).

Every part is read from a summary the store keeps as runs end (``Store.run_summary``), from the
first entries of an index (the next fires) or from this process's memory (its lag): the read
costs the same with ten jobs or a million, and ten runs or ten million.
"""

from __future__ import annotations

from dataclasses import dataclass

from kairos.engine.telemetry import LagReading, Telemetry
from kairos.models import JobRecord, RunStatus
from kairos.store import JobQuery, NodeInfo, Store

__all__ = ["HOUR_US", "Overview", "read_overview"]

HOUR_US = 3600 * 1_000_000


@dataclass(frozen=True, slots=True)
class Overview:
    at_us: int
    """When it was read (this node's clock)."""
    ended_last_hour: dict[RunStatus, int]
    """Runs ended in the last hour (to the minute), by status, on every node."""
    ended_last_day: dict[RunStatus, int]
    """Runs ended in the last 24 hours (to the minute), by status, on every node."""
    running: int
    """Runs in flight, on every node."""
    queued: int
    """Queued runs: retries, runs now, runs waiting for a slot of their job."""
    failing: int
    """Jobs whose last call failed (or was interrupted)."""
    failing_jobs: list[str]
    """The first of them, the latest failure first."""
    tripped: int
    """Jobs the circuit breaker paused."""
    tripped_jobs: list[str]
    """The first of them, by id."""
    next_fires: list[JobRecord]
    """The jobs due soonest (a tripped job's probe included)."""
    lag: LagReading
    """This node's lag (due time to call), over the last minute."""
    node_id: str
    nodes: list[NodeInfo]
    """Every live node."""


async def read_overview(
    store: Store, telemetry: Telemetry, *, node_id: str, now_us: int, limit: int
) -> Overview:
    """The overview as of ``now_us``, with the first ``limit`` failing and tripped jobs and
    next fires."""
    summary = await store.run_summary([now_us - HOUR_US, now_us - 24 * HOUR_US], limit)
    last_hour, last_day = summary.ended
    next_fires = await store.list_jobs(JobQuery(by_next_run=True), limit)
    return Overview(
        at_us=now_us,
        ended_last_hour=last_hour,
        ended_last_day=last_day,
        running=summary.running,
        queued=summary.queued,
        failing=summary.failing,
        failing_jobs=summary.failing_jobs,
        tripped=summary.tripped,
        tripped_jobs=summary.tripped_jobs,
        next_fires=[job for job in next_fires if job.next_run_us is not None],
        lag=telemetry.recent_lag.reading(),
        node_id=node_id,
        nodes=await store.list_nodes(),
    )
