"""Prometheus metrics of one Kairos process, read from the engine's ``Telemetry`` when scraped.

Every sample carries a ``node`` label (the node id), so the series of replicas stay apart even
where a scrape configuration does not tell instances apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from kairos import __version__
from kairos.engine import Scheduler
from kairos.engine.hosts import HostState
from kairos.engine.telemetry import Histogram
from kairos.errors import StoreUnavailable
from kairos.models import JobState

__all__ = ["SchedulerCollector", "build_registry"]

# Counting jobs by state reads every job: done at most this often, however often scraped.
JOB_COUNT_TTL_S = 15.0


class SchedulerCollector(Collector):
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        self._job_counts: dict[JobState, int] = {}
        self._missing_tasks: dict[str, int] = {}
        self._counted_at = float("-inf")

    async def refresh(self) -> None:
        """Count jobs by state again if the last count is stale (call before collecting). With
        the store unreachable the last count stays: the scrape still answers."""
        if time.monotonic() - self._counted_at < JOB_COUNT_TTL_S:
            return
        try:
            self._job_counts = await self._scheduler.count_jobs()
            self._missing_tasks = await self._scheduler.jobs_missing_a_task()
        except StoreUnavailable:
            self._scheduler.telemetry.store_error("metrics")
            return
        self._counted_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        node = self._scheduler.node_id
        telemetry = self._scheduler.telemetry
        info = InfoMetricFamily("kairos_node", "This Kairos process", labels=["node"])
        info.add_metric([node], {"version": __version__})
        yield info

        fires = CounterMetricFamily(
            "kairos_fires",
            "Fires and attempts ended by this node, by outcome",
            labels=["node", "status"],
        )
        for status, count in sorted(telemetry.fires.items()):
            fires.add_metric([node, status], count)
        yield fires

        lag = HistogramMetricFamily(
            "kairos_fire_lag_seconds",
            "From when a run was due to when its call began",
            labels=["node"],
        )
        _add(lag, [node], telemetry.lag)
        yield lag

        durations = HistogramMetricFamily(
            "kairos_run_duration_seconds",
            "How long target calls took, by outcome",
            labels=["node", "status"],
        )
        for status, histogram in sorted(telemetry.durations.items()):
            _add(durations, [node, status], histogram)
        yield durations

        claims = HistogramMetricFamily(
            "kairos_claim_batch_size", "Runs started per claim transaction", labels=["node"]
        )
        _add(claims, [node], telemetry.claims)
        yield claims

        errors = CounterMetricFamily(
            "kairos_store_errors",
            "Store calls that failed (database unreachable), by what was being done",
            labels=["node", "operation"],
        )
        for operation, count in sorted(telemetry.store_errors.items()):
            errors.add_metric([node, operation], count)
        yield errors

        in_flight = GaugeMetricFamily(
            "kairos_runs_in_flight", "Runs whose target call is under way", labels=["node"]
        )
        in_flight.add_metric([node], self._scheduler.runs_in_flight)
        yield in_flight

        yield from self._hosts(node)

        jobs = GaugeMetricFamily(
            "kairos_jobs",
            f"Jobs in the store by state (counted at most every {JOB_COUNT_TTL_S:g} s)",
            labels=["node", "state"],
        )
        for state, count in self._job_counts.items():
            jobs.add_metric([node, state.value], count)
        yield jobs

        missing = GaugeMetricFamily(
            "kairos_jobs_missing_task",
            "Jobs whose python task no live node has registered: their fires wait for one"
            f" (counted at most every {JOB_COUNT_TTL_S:g} s)",
            labels=["node", "task"],
        )
        for task, count in sorted(self._missing_tasks.items()):
            missing.add_metric([node, task], count)
        yield missing

    def _hosts(self, node: str) -> Iterator[Metric]:
        """Politeness per target host: one series per host this process called lately."""
        hosts = self._scheduler.hosts()
        for name, kind, text, value in _HOST_SERIES:
            family = kind(name, text, labels=["node", "host"])
            for host in hosts:
                family.add_metric([node, host.key], value(host))
            yield family


_HOST_SERIES: tuple[
    tuple[str, type[GaugeMetricFamily | CounterMetricFamily], str, Callable[[HostState], float]],
    ...,
] = (
    (
        "kairos_target_concurrency_limit",
        GaugeMetricFamily,
        "Calls this process may have in flight to the host now (adaptive)",
        lambda h: int(h.limit),
    ),
    (
        "kairos_target_in_flight",
        GaugeMetricFamily,
        "Calls in flight to the host",
        lambda h: h.in_flight,
    ),
    (
        "kairos_target_waiting",
        GaugeMetricFamily,
        "Runs due and waiting for a slot at the host",
        lambda h: len(h.waiters),
    ),
    (
        "kairos_target_overloads",
        CounterMetricFamily,
        "Calls that showed the host overloaded (refused, connect timeout, 429, 503, slow)",
        lambda h: h.overloads,
    ),
    (
        "kairos_target_connect_retries",
        CounterMetricFamily,
        "Calls that never left (no connection) and were tried again",
        lambda h: h.connect_retries,
    ),
)


def _add(family: HistogramMetricFamily, labels: list[str], histogram: Histogram) -> None:
    family.add_metric(labels, histogram.cumulative(), sum_value=histogram.sum)


def build_registry(scheduler: Scheduler) -> tuple[CollectorRegistry, SchedulerCollector]:
    """A registry of this process's metrics (one per app, so tests can run several apps)."""
    registry = CollectorRegistry()
    collector = SchedulerCollector(scheduler)
    registry.register(collector)
    return registry, collector
