"""Every metric and label that the alert rules and the Grafana dashboard in ``deploy/`` name is
one a real Kairos exports: checked against a scrape of the app after it ran jobs against a
real HTTP target, so that histograms, per-status and per-host series show."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import promql_parser as promql
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from kairos.api import create_app
from kairos.models import JobState, RunStatus
from kairos.settings import Settings
from tests.support.deploy import (
    DEPLOY,
    PROMETHEUS_TARGET_LABELS,
    dashboard_queries,
    load_yaml,
    result_labels,
    selectors,
)
from tests.support.server import wait_until
from tests.support.target import ThreadedTarget

TOKEN = "deploy-metrics-token"
PROMETHEUS_OWN = {"up": set[str]()}
"""Series Prometheus itself makes of every scrape target."""
LABEL_VALUES = {"status": {s.value for s in RunStatus}, "state": {s.value for s in JobState}}
"""Labels whose every value is one of the engine's names."""


@pytest.fixture(scope="module")
def exported() -> Iterator[dict[str, set[str]]]:
    """Each sample name of a scrape (``_bucket``, ``_total``... included) and its labels."""
    target = ThreadedTarget().start()
    app = create_app(Settings(database_url="memory://", admin_token=TOKEN))
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            yield scrape_after_runs(client, app.state.scheduler, target.url("/ok"))
    finally:
        target.stop()


def scrape_after_runs(client: TestClient, scheduler: Any, url: str) -> dict[str, set[str]]:
    job = {"trigger": {"type": "cron", "expression": "0 0 1 1 *"}, "target": {"url": url}}
    assert client.put("/jobs/deploy-check", json=job).status_code == 201
    assert client.post("/jobs/deploy-check/run").status_code == 202

    def finished() -> bool:
        runs = client.get("/jobs/deploy-check/runs").json()["items"]
        return bool(runs) and runs[0]["status"] == "succeeded"

    wait_until(finished, 10, what="the run to succeed")
    # A python job whose task no live node has: its series shows.
    python = {**job, "target": {"type": "python", "task": "elsewhere"}}
    assert client.put("/jobs/deploy-python", json=python).status_code == 201
    # No database fails here: count a store error the way the store's failure paths do, so
    # the counter's labels show in the scrape.
    scheduler.telemetry.store_error("claim")
    text = client.get("/metrics").text
    labels: dict[str, set[str]] = dict(PROMETHEUS_OWN)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def alert_rules() -> list[dict[str, Any]]:
    (group,) = load_yaml(DEPLOY / "prometheus" / "alerts.yml")["groups"]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


QUERIES = [
    *((rule["alert"], rule["expr"]) for rule in alert_rules()),
    *(
        (f"dashboard query {n}", q)
        for n, q in enumerate(dashboard_queries(DEPLOY / "grafana-dashboard.json"))
    ),
]


@pytest.mark.parametrize(("where", "query"), QUERIES, ids=[where for where, _ in QUERIES])
def test_each_query_names_exported_metrics_labels_and_values(
    exported: dict[str, set[str]], where: str, query: str
) -> None:
    read = selectors(promql.parse(query))
    assert read, f"{where} reads no series"
    for metric, matchers in read:
        assert metric in exported, f"{where}: Kairos exports no {metric}"
        unknown = set(matchers) - exported[metric] - PROMETHEUS_TARGET_LABELS
        assert not unknown, f"{where}: {metric} has no label {unknown}"
        for label, pattern in matchers.items():
            for value in pattern.split("|") if label in LABEL_VALUES else ():
                assert value in LABEL_VALUES[label], f"{where}: {label}={value!r} never happens"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_annotations_name_only_labels_the_alert_carries(
    exported: dict[str, set[str]], rule: dict[str, Any]
) -> None:
    carried = result_labels(promql.parse(rule["expr"]), exported)
    named = set(re.findall(r"\$labels\.(\w+)", " ".join(rule["annotations"].values())))
    assert named <= carried, f"{rule['alert']} names {named - carried}, not in its series"
