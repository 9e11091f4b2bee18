"""Prometheus metrics of one Kairos process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Info

from kairos.engine import Scheduler

__all__ = ["build_registry"]


def build_registry(scheduler: Scheduler) -> CollectorRegistry:
    """A registry of this process's metrics (one per app, so tests can run several apps)."""
    registry = CollectorRegistry()
    Info("kairos_node", "This Kairos process", registry=registry).info(
        {"node_id": scheduler.node_id}
    )
    in_flight = Gauge(
        "kairos_runs_in_flight", "Runs whose target call is under way", registry=registry
    )
    in_flight.set_function(lambda: scheduler.runs_in_flight)
    return registry
