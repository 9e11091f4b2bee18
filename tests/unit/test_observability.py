"""Metric arithmetic and log formats, without a server."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.engine.telemetry import Histogram, Telemetry
from kairos.logs import JsonFormatter, TextFormatter, run_fields
from kairos.models import RunStatus
from kairos.settings import Settings


def test_histogram_buckets_are_cumulative_with_inclusive_bounds() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        histogram.observe(value)
    assert histogram.cumulative() == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert histogram.sum == pytest.approx(8.65)


def test_telemetry_counts_outcomes_from_calls_and_from_claims() -> None:
    telemetry = Telemetry()
    telemetry.claimed(3, {RunStatus.SKIPPED: 2, RunStatus.MISSED: 1})
    telemetry.claimed(0, {})
    telemetry.ended(RunStatus.SUCCEEDED, 0.2)
    telemetry.ended(RunStatus.FAILED, None)
    telemetry.started(-0.001)  # a call may begin a hair before its due time: counted as 0
    assert telemetry.fires == {"skipped": 2, "missed": 1, "succeeded": 1, "failed": 1}
    assert telemetry.claims.cumulative()[-1] == ("+Inf", 1)
    assert list(telemetry.durations) == ["succeeded"]
    assert telemetry.lag.counts[0] == 1


def record(**extra: object) -> logging.LogRecord:
    entry = logging.LogRecord(
        "kairos.dispatcher", logging.INFO, "f.py", 1, "run failed: %s", ("boom",), None
    )
    for key, value in extra.items():
        setattr(entry, key, value)
    return entry


def test_text_lines_end_with_the_run_they_are_about() -> None:
    fields = run_fields("nightly", 42, 1_800_000_000_000_000, 2)
    line = TextFormatter().format(record(**fields))
    assert line.endswith(
        "kairos.dispatcher: run failed: boom "
        "[job_id=nightly run_id=42 scheduled_for=2027-01-15T08:00:00+00:00 attempt=2]"
    )
    assert TextFormatter().format(record()).endswith("run failed: boom")


def test_json_lines_carry_the_run_as_keys() -> None:
    entry = json.loads(JsonFormatter().format(record(**run_fields("nightly", 42, 0, 1))))
    assert entry["message"] == "run failed: boom"
    assert (entry["level"], entry["logger"]) == ("info", "kairos.dispatcher")
    assert (entry["job_id"], entry["run_id"], entry["attempt"]) == ("nightly", 42, 1)
    assert entry["scheduled_for"] == "1970-01-01T00:00:00+00:00"


def test_the_grafana_dashboard_asks_only_for_metrics_kairos_exports() -> None:
    dashboard = (Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json").read_text()
    asked = set(re.findall(r"kairos_[a-z_]+", dashboard))
    settings = Settings(database_url="memory://", admin_token="t")
    with TestClient(create_app(settings)) as client:
        exported = set(re.findall(r"^# TYPE (\w+)", client.get("/metrics").text, re.MULTILINE))
    suffixes = re.compile(r"_(bucket|sum|count|total)$")
    assert asked
    assert {suffixes.sub("", name) for name in asked} <= {suffixes.sub("", n) for n in exported}
