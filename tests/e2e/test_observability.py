"""What an operator sees of a running server: Prometheus metrics, JSON log lines about runs."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import KairosProcess, TargetProcess, wait_until

pytestmark = pytest.mark.e2e


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` -> value, labels as written (sorted by the client library)."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def test_metrics_count_fires_lag_durations_claims_and_jobs_by_state(
    tmp_path: Path, target: TargetProcess
) -> None:
    with KairosProcess(f"sqlite:///{tmp_path}/k.db") as server, server.client() as api:
        tick = {
            "trigger": {"type": "interval", "seconds": 0.2},
            "target": {"url": target.url("/ok")},
        }
        fail = {
            "trigger": {"type": "interval", "seconds": 0.2},
            "target": {"url": target.url("/bad?status=500")},
        }
        assert api.put("/jobs/ok", json=tick).status_code == 201
        assert api.put("/jobs/bad", json=fail).status_code == 201
        assert api.put("/jobs/held", json=tick | {"paused": True}).status_code == 201
        node = api.get("/readyz").json()["node_id"]

        def metrics() -> dict[str, float]:
            return samples(httpx.get(f"{server.base_url}/metrics").text)

        ok = f'kairos_fires_total{{node="{node}",status="succeeded"}}'
        bad = f'kairos_fires_total{{node="{node}",status="failed"}}'
        wait_until(lambda: metrics().get(ok, 0) >= 3 and metrics().get(bad, 0) >= 3, 20)
        seen = metrics()
        lag_count = seen[f'kairos_fire_lag_seconds_count{{node="{node}"}}']
        assert lag_count >= seen[ok] + seen[bad] - 2  # a call under way has started, not ended
        assert seen[f'kairos_fire_lag_seconds_bucket{{le="+Inf",node="{node}"}}'] == lag_count
        duration = f'kairos_run_duration_seconds_count{{node="{node}",status="succeeded"}}'
        assert seen[duration] == seen[ok]
        assert seen[f'kairos_claim_batch_size_count{{node="{node}"}}'] >= 1
        assert seen[f'kairos_jobs{{node="{node}",state="scheduled"}}'] == 2
        assert seen[f'kairos_jobs{{node="{node}",state="paused"}}'] == 1
        assert f'kairos_runs_in_flight{{node="{node}"}}' in seen
        assert f'kairos_node_info{{node="{node}",version="0.1.0"}}' in seen


def test_json_logs_name_the_run_of_each_line_about_one(
    tmp_path: Path, target: TargetProcess
) -> None:
    log = tmp_path / "kairos.log"
    env = {"KAIROS_LOG_FORMAT": "json"}
    server = KairosProcess(f"sqlite:///{tmp_path}/k.db", env=env, log_path=log)
    with server, server.client() as api:
        job = {
            "trigger": {"type": "interval", "seconds": 0.2},
            "target": {"url": target.url("/bad?status=503")},
        }
        assert api.put("/jobs/flaky", json=job).status_code == 201

        def failures() -> list[dict[str, Any]]:
            lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
            return [x for x in lines if x["message"].startswith("run failed")]

        wait_until(lambda: len(failures()) >= 2, 20, what="two logged failures")
        first = failures()[0]
        assert first["level"] == "info"
        assert first["job_id"] == "flaky"
        assert isinstance(first["run_id"], int)
        assert first["attempt"] == 1
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", first["scheduled_for"])
        run = api.get(f"/runs/{first['run_id']}").json()
        assert run["job_id"] == "flaky"
        assert run["scheduled_for"].startswith(first["scheduled_for"][:19])
    every_line = [line for line in log.read_text().splitlines() if line.strip()]
    # The start-up banner is printed for people; everything logged is JSON.
    logged = [line for line in every_line if line.startswith("{")]
    assert any(json.loads(line)["logger"].startswith("uvicorn") for line in logged)


def test_a_database_file_corrupted_under_a_running_server_makes_it_not_ready(
    tmp_path: Path,
) -> None:
    path = tmp_path / "k.db"
    with KairosProcess(f"sqlite:///{path}") as server:
        assert httpx.get(f"{server.base_url}/readyz").status_code == 200
        # Everything in the file itself (the log emptied into it), then garbage over all of it
        # but its first page: the server's next reads find it corrupt.
        conn = sqlite3.connect(path)
        try:
            wait_until(lambda: _checkpointed(conn), 10, what="the log emptied into the file")
        finally:
            conn.close()
        with path.open("r+b") as file:
            page_size = 4096
            file.seek(page_size)
            file.write(os.urandom(path.stat().st_size - page_size))

        def readyz() -> httpx.Response:
            return httpx.get(f"{server.base_url}/readyz")

        wait_until(lambda: readyz().status_code == 503, 10, what="not ready")
        assert readyz().json() == {
            "status": "unavailable",
            "detail": "the database is corrupt: database disk image is malformed",
        }
        assert httpx.get(f"{server.base_url}/healthz").status_code == 200


def _checkpointed(conn: sqlite3.Connection) -> bool:
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return bool(busy == 0)
