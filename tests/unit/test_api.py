"""The HTTP API on the in-memory store: contract shapes, auth, errors, pagination."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from kairos.api import create_app
from kairos.settings import Settings
from tests.support.behind import write_behind

TOKEN = "test-token"
TARGET = "http://127.0.0.1:9/hook"


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(Settings(database_url="memory://", admin_token=TOKEN))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


def cron_job(expression: str = "0 2 * * *", **extra: Any) -> dict[str, Any]:
    return {
        "trigger": {"type": "cron", "expression": expression},
        "target": {"url": TARGET},
    } | extra


# Operations ----------------------------------------------------------------------------------


def test_metrics_are_prometheus_text_counting_jobs_by_state(client: TestClient) -> None:
    client.put("/jobs/on", json=cron_job())
    client.put("/jobs/off", json=cron_job(paused=True))
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert families["kairos_runs_in_flight"].type == "gauge"
    assert [sample.value for sample in families["kairos_runs_in_flight"].samples] == [0]
    assert families["kairos_fires"].type == "counter"
    jobs = {s.labels["state"]: s.value for s in families["kairos_jobs"].samples}
    assert (jobs["scheduled"], jobs["paused"]) == (1, 1)


# The seed's endpoints, kept exactly --------------------------------------------------------------


def test_seed_example_create_replace_delete(client: TestClient) -> None:
    body = {"task_id": "hourly-crawl", "crontab": "0 * * * *", "target_endpoint": TARGET}
    created = client.post("/tasks", json=body)
    assert created.status_code == 200
    assert created.json()["job_id"] == "hourly-crawl"
    job = client.get("/jobs/hourly-crawl").json()
    assert job["trigger"] == {"type": "cron", "expression": "0 * * * *"}
    assert job["target"]["url"] == TARGET
    assert job["target"]["method"] == "POST"
    assert job["next_run_time"].endswith(":00:00Z") or job["next_run_time"].endswith(":00:00+00:00")

    replaced = client.post("/tasks", json=body | {"crontab": "0 2 * * *"})
    assert replaced.status_code == 200
    assert replaced.json()["job_id"] == "hourly-crawl"
    job = client.get("/jobs/hourly-crawl").json()
    assert job["trigger"]["expression"] == "0 2 * * *"
    assert "T02:00:00" in job["next_run_time"]
    assert len(client.get("/jobs").json()["items"]) == 1

    deleted = client.delete("/tasks/hourly-crawl")
    assert (deleted.status_code, deleted.json()) == (200, {"status": "deleted"})
    missing = client.delete("/tasks/hourly-crawl")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Task not found"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task_id": "t", "crontab": "61 * * * *", "target_endpoint": TARGET}, "crontab"),
        ({"task_id": "t", "crontab": "* * *", "target_endpoint": TARGET}, "crontab"),
        ({"task_id": "t", "crontab": "0 * * * *", "target_endpoint": "ftp://x"}, "target_endpoint"),
        (
            {"task_id": "t", "crontab": "0 * * * *", "target_endpoint": "not a url"},
            "target_endpoint",
        ),
        ({"task_id": "bad id!", "crontab": "0 * * * *", "target_endpoint": TARGET}, "task_id"),
        ({"crontab": "0 * * * *", "target_endpoint": TARGET}, "task_id"),
    ],
)
def test_seed_bad_input_names_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/tasks", json=body)
    assert response.status_code == 422
    assert field in [part for error in response.json()["detail"] for part in error["loc"]]
    assert client.get("/jobs").json()["items"] == []


# Jobs ------------------------------------------------------------------------------------------


def test_put_creates_then_replaces(client: TestClient) -> None:
    first = client.put("/jobs/nightly", json=cron_job(timezone="Europe/Berlin"))
    assert first.status_code == 201
    job = first.json()
    assert job["id"] == "nightly"
    assert job["state"] == "scheduled"
    assert job["next_run_time"].endswith(("+01:00", "+02:00"))
    assert job["max_instances"] == 1
    second = client.put("/jobs/nightly", json=cron_job("*/5 * * * *"))
    assert second.status_code == 200
    assert second.json()["created_at"] == job["created_at"]
    assert second.json()["timezone"] == "UTC"


def test_put_answers_as_fastapi_would_on_both_of_its_paths(client: TestClient) -> None:
    # A well-formed PUT skips FastAPI's machinery; one with a charset parameter goes through it.
    spec = cron_job(tags=["b", "a"], on_failure={"url": TARGET, "secret": "s" * 32})
    lean = client.put("/jobs/lean", json=spec)
    standard = client.put(
        "/jobs/standard",
        content=json.dumps(spec),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert (lean.status_code, standard.status_code) == (201, 201)
    assert lean.headers["content-type"] == standard.headers["content-type"]
    # Byte for byte what FastAPI makes of the same job on GET.
    assert lean.content == client.get("/jobs/lean").content
    shown = lean.json()
    assert shown["on_failure"]["secret"] == "***"
    assert shown["tags"] == ["a", "b"]
    assert {k: v for k, v in shown.items() if k not in ("id", "created_at", "updated_at")} == {
        k: v for k, v in standard.json().items() if k not in ("id", "created_at", "updated_at")
    }
    assert client.put("/jobs/lean", json=spec).status_code == 200


VALID = json.dumps(cron_job()).encode()


@pytest.mark.parametrize(
    ("headers", "content", "status", "detail"),
    [
        ({"Authorization": "Bearer wrong"}, VALID, 401, "Invalid bearer token"),
        ({"Authorization": "Basic dTpw"}, VALID, 401, "Missing bearer token"),
        ({"Authorization": "Bearer "}, VALID, 401, "Missing bearer token"),
        ({}, b'{"trigger": ', 422, "json_invalid"),
        ({}, b"[1]", 422, "model_attributes_type"),
        ({}, b"", 422, "missing"),
        ({}, b"[" * 100_000 + b"]" * 100_000, 400, "error parsing the body"),
        ({"Content-Type": "text/plain"}, VALID, 422, "body"),
    ],
)
def test_put_errors_are_fastapis_whichever_path_the_request_takes(
    client: TestClient, headers: dict[str, str], content: bytes, status: int, detail: str
) -> None:
    sent = {"Content-Type": "application/json"} | headers
    response = client.put("/jobs/x", content=content, headers=sent)
    assert response.status_code == status, response.text
    assert detail in response.text
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/jobs/x").status_code == 404


def test_put_needs_the_jobs_write_scope(client: TestClient) -> None:
    key = client.post("/auth/keys", json={"name": "reader", "scopes": ["jobs:read"]}).json()
    response = client.put(
        "/jobs/x", json=cron_job(), headers={"Authorization": f"Bearer {key['key']}"}
    )
    assert response.status_code == 403
    assert "jobs:write" in response.json()["detail"]


def test_post_creates_and_refuses_a_taken_id(client: TestClient) -> None:
    assert client.post("/jobs", json=cron_job() | {"id": "a"}).status_code == 201
    conflict = client.post("/jobs", json=cron_job() | {"id": "a"})
    assert conflict.status_code == 409
    assert "exists" in conflict.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/jobs/ghost"),
        ("PATCH", "/jobs/ghost"),
        ("DELETE", "/jobs/ghost"),
        ("POST", "/jobs/ghost/pause"),
        ("POST", "/jobs/ghost/resume"),
        ("POST", "/jobs/ghost/run"),
        ("GET", "/jobs/ghost/runs"),
        ("GET", "/runs/999"),
    ],
)
def test_unknown_job_is_404_on_every_route(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"paused": True})
    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)


INVALID_JOBS: list[tuple[dict[str, Any], list[str]]] = [
    (cron_job("0 2 * *"), ["trigger", "expression"]),
    (cron_job("0 25 * * *"), ["trigger", "expression"]),
    (cron_job(timezone="Mars/Olympus"), ["timezone"]),
    ({"trigger": {"type": "cron", "hour": "25"}, "target": {"url": TARGET}}, ["hour"]),
    ({"trigger": {"type": "cron"}, "target": {"url": TARGET}}, ["trigger"]),
    ({"trigger": {"type": "weekly"}, "target": {"url": TARGET}}, ["trigger"]),
    ({"trigger": {"type": "interval"}, "target": {"url": TARGET}}, ["interval"]),
    ({"trigger": {"type": "interval", "seconds": -1}, "target": {"url": TARGET}}, ["seconds"]),
    (
        {"trigger": {"type": "date", "run_date": "tomorrow"}, "target": {"url": TARGET}},
        ["run_date"],
    ),
    (cron_job() | {"target": {"url": "ftp://x"}}, ["url"]),
    (cron_job() | {"target": {"url": TARGET, "method": "FETCH"}}, ["method"]),
    (cron_job() | {"target": {"url": TARGET, "timeout": 0}}, ["timeout"]),
    (cron_job() | {"target": {"url": TARGET, "headers": {"A": "b\r\nc"}}}, ["headers"]),
    (cron_job() | {"target": {"url": TARGET, "body": json.loads("[" * 129 + "]" * 129)}}, ["body"]),
    (cron_job(max_instances=0), ["max_instances"]),
    (cron_job(misfire_grace_time=-5), ["misfire_grace_time"]),
    (cron_job(unknown_field=1), ["unknown_field"]),
    (cron_job(retry={"max_attempts": 0}), ["retry", "max_attempts"]),
    (cron_job(retry={"initial_delay": 10, "max_delay": 5}), ["retry"]),
    (cron_job(retry={"jitter": 2}), ["retry", "jitter"]),
    (cron_job(retry={"tries": 3}), ["retry", "tries"]),
    (cron_job(deadline=0), ["deadline"]),
    (cron_job(max_consecutive_failures=0), ["max_consecutive_failures"]),
    (cron_job(auto_resume_after=-1), ["auto_resume_after"]),
    (cron_job(history={"max_runs": 0}), ["history", "max_runs"]),
    ({"target": {"url": TARGET}}, ["trigger"]),
    # Not JSON numbers, or dates whose schedule would leave the representable years.
    (cron_job(misfire_grace_time=float("nan")), ["misfire_grace_time"]),
    (cron_job(deadline=float("inf")), ["deadline"]),
    (cron_job() | {"target": {"url": TARGET, "body": {"a": [float("nan")]}}}, ["body"]),
    (cron_job() | {"target": {"url": TARGET, "body": {"a": [2**64]}}}, ["body"]),
    (cron_job() | {"target": {"url": TARGET, "body": [-(2**63) - 1]}}, ["body"]),
    (cron_job(retry={"max_attempts": 3, "initial_delay": float("nan")}), ["initial_delay"]),
    (
        {"trigger": {"type": "interval", "seconds": float("inf")}, "target": {"url": TARGET}},
        ["seconds"],
    ),
    (
        {
            "trigger": {"type": "date", "run_date": "0001-01-01T00:00:00Z"},
            "target": {"url": TARGET},
        },
        ["run_date"],
    ),
    (
        {
            "trigger": {"type": "interval", "seconds": 5, "start_date": "9999-12-31T23:59:59"},
            "target": {"url": TARGET},
        },
        ["start_date"],
    ),
]


@pytest.mark.parametrize(("body", "names"), INVALID_JOBS)
def test_invalid_job_is_422_naming_the_field_and_keeps_the_old_job(
    client: TestClient, body: dict[str, Any], names: list[str]
) -> None:
    assert client.put("/jobs/keep", json=cron_job("0 3 * * *")).status_code == 201
    # Encoded here: the client's own encoder refuses NaN and infinity, which clients do send.
    sent = json.dumps(body).encode()
    response = client.put("/jobs/keep", content=sent, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    locs = [str(p) for error in response.json()["detail"] for p in error["loc"]]
    for name in names:
        assert any(name in part for part in locs), (name, response.json())
    assert client.get("/jobs/keep").json()["trigger"]["expression"] == "0 3 * * *"


def test_a_stored_job_stays_readable_under_checks_added_since_it_was_written(
    tmp_path: Path,
) -> None:
    from sqlalchemy import update

    from kairos.store.schema import jobs

    url = f"sqlite:///{tmp_path}/kairos.db"  # a file, so the old version's write can reach it
    app = create_app(Settings(database_url=url, admin_token=TOKEN))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.put("/jobs/old", json=cron_job()).status_code == 201
        deep = json.loads("[" * 150 + "]" * 150)
        stored = {"trigger": {"type": "date", "run_date": "1900-01-01T00:00:00Z"}}
        stored |= {"target": {"url": TARGET, "body": deep}, "paused": True}
        change = update(jobs).where(jobs.c.id == "old").values(spec=json.dumps(stored))
        write_behind(url, change)
        job = client.get("/jobs/old")
        assert job.status_code == 200
        assert job.json()["trigger"]["run_date"].startswith("1900-01-01")
        assert client.get("/jobs").status_code == 200
        # Changing it applies today's checks, naming the field.
        changed = client.patch("/jobs/old", json={"description": "x"})
        assert changed.status_code == 422
        assert "run_date" in changed.text


def test_batch_creates_and_replaces_in_one_call(client: TestClient) -> None:
    client.put("/jobs/b0", json=cron_job("0 1 * * *"))
    jobs = [{"id": f"b{i}"} | cron_job(f"0 {i} * * *") for i in range(3)]
    response = client.post("/jobs:batch", json={"jobs": jobs})
    assert response.status_code == 200, response.text
    assert response.json() == {"created": 2, "replaced": 1}
    for i in range(3):
        assert client.get(f"/jobs/b{i}").json()["trigger"]["expression"] == f"0 {i} * * *"


@pytest.mark.parametrize(
    ("bad", "loc"),
    [
        ({"trigger": {"type": "cron", "expression": "61 * * * *"}}, ["jobs", 1, "trigger"]),
        ({"target": {"url": "ftp://x"}}, ["jobs", 1, "target"]),
        ({"id": "b0"}, ["jobs", 1, "id"]),
        ({"id": "no spaces"}, ["jobs", 1, "id"]),
    ],
)
def test_batch_with_one_bad_job_names_it_and_writes_nothing(
    client: TestClient, bad: dict[str, Any], loc: list[Any]
) -> None:
    jobs = [{"id": f"b{i}"} | cron_job() for i in range(3)]
    jobs[1] |= bad
    response = client.post("/jobs:batch", json={"jobs": jobs})
    assert response.status_code == 422, response.text
    error_loc = response.json()["detail"][0]["loc"]
    assert error_loc[1 : 1 + len(loc)] == loc, error_loc
    assert client.get("/jobs").json()["items"] == []


@pytest.mark.parametrize("body", [{"jobs": []}, {}, {"jobs": [{"id": "x"}] * 10_001}])
def test_batch_size_is_checked(client: TestClient, body: dict[str, Any]) -> None:
    response = client.post("/jobs:batch", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", "jobs"]


def test_malformed_json_is_422_not_500(client: TestClient) -> None:
    response = client.put(
        "/jobs/x", content=b'{"trigger": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize("job_id", ["a" * 129, "white space", "semi;colon"])
def test_invalid_id_on_put_is_422(client: TestClient, job_id: str) -> None:
    response = client.put(f"/jobs/{job_id}", json=cron_job())
    assert response.status_code == 422
    assert "job_id" in response.json()["detail"][0]["loc"]


def test_patch_changes_only_the_given_fields(client: TestClient) -> None:
    client.put("/jobs/p", json=cron_job(description="before", max_instances=2))
    response = client.patch("/jobs/p", json={"description": "after"})
    assert response.status_code == 200
    assert response.json()["description"] == "after"
    assert response.json()["max_instances"] == 2
    bad = client.patch("/jobs/p", json={"trigger": {"type": "cron", "expression": "x"}})
    assert bad.status_code == 422
    unknown = client.patch("/jobs/p", json={"id": "other"})
    assert unknown.status_code == 422
    assert client.get("/jobs/p").json()["description"] == "after"


def test_pause_and_resume(client: TestClient) -> None:
    client.put("/jobs/p", json=cron_job())
    paused = client.post("/jobs/p/pause").json()
    assert (paused["paused"], paused["state"], paused["next_run_time"]) == (True, "paused", None)
    resumed = client.post("/jobs/p/resume").json()
    assert (resumed["paused"], resumed["state"]) == (False, "scheduled")
    assert resumed["next_run_time"] is not None


def test_delete_is_204_then_404(client: TestClient) -> None:
    client.put("/jobs/d", json=cron_job())
    assert client.delete("/jobs/d").status_code == 204
    assert client.get("/jobs/d").status_code == 404


def test_run_now_answers_202_with_the_run(client: TestClient) -> None:
    client.put("/jobs/r", json=cron_job(paused=True))
    response = client.post("/jobs/r/run")
    assert response.status_code == 202
    run = response.json()
    assert run["job_id"] == "r"
    assert run["attempt"] == 1
    assert run["manual"] is True
    assert run["status"] in {"scheduled", "running", "failed"}
    assert client.get(f"/runs/{run['id']}").json()["id"] == run["id"]


@pytest.mark.parametrize(
    "path",
    [
        "/runs/99999999999999999999999",
        "/runs?cursor={}",
        "/jobs/x/runs?cursor={}",
        "/audit?cursor={}",
        "/jobs?sort=next_run&cursor={}",
    ],
)
@pytest.mark.parametrize("key", ["99999999999999999999999", "\u00b2", "9223372036854775808"])
def test_ids_and_cursors_beyond_64_bits_are_rejected_not_a_500(
    client: TestClient, path: str, key: str
) -> None:
    from kairos.pagination import encode_cursor

    client.put("/jobs/x", json=cron_job())
    cursor = encode_cursor(f"{key}/x" if "next_run" in path else key)
    response = client.get(path.format(cursor))
    assert response.status_code == 422, response.text
    assert "run_id" in response.text or "cursor" in response.text


def test_list_jobs_paginates_with_a_cursor(client: TestClient) -> None:
    for i in range(5):
        client.put(f"/jobs/j{i}", json=cron_job())
    first = client.get("/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in first["items"]] == ["j0", "j1"]
    second = client.get("/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [j["id"] for j in second["items"]] == ["j2", "j3"]
    last = client.get("/jobs", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [j["id"] for j in last["items"]] == ["j4"]
    assert last["next_cursor"] is None
    assert client.get("/jobs", params={"cursor": "!!!"}).status_code == 422


def test_list_jobs_by_prefix_state_tag_and_next_run(client: TestClient) -> None:
    # Fires on dates a day apart: their order by next run holds at any time of day.
    def on(days: int) -> dict[str, Any]:
        when = datetime.now(UTC) + timedelta(days=days)
        return {
            "trigger": {"type": "date", "run_date": when.isoformat()},
            "target": {"url": TARGET},
        }

    client.put("/jobs/etl.daily", json=on(2) | {"tags": ["etl", "etl", "daily"]})
    client.put("/jobs/etl.hourly", json=on(1) | {"tags": ["etl"]})
    client.put("/jobs/report", json=cron_job("0 1 * * *", paused=True, tags=["daily"]))
    assert client.get("/jobs/etl.daily").json()["tags"] == ["daily", "etl"]

    def ids(**params: Any) -> list[str]:
        response = client.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()["items"]]

    assert ids(q="etl.") == ["etl.daily", "etl.hourly"]
    assert ids(tag="daily") == ["etl.daily", "report"]
    assert ids(state="paused") == ["report"]
    assert ids(tag="daily", state="scheduled") == ["etl.daily"]
    assert ids(sort="next_run") == ["etl.hourly", "etl.daily", "report"]
    first = client.get("/jobs", params={"sort": "next_run", "limit": 1}).json()
    rest = client.get(
        "/jobs", params={"sort": "next_run", "limit": 5, "cursor": first["next_cursor"]}
    ).json()
    assert [job["id"] for job in rest["items"]] == ["etl.daily", "report"]
    by_id_cursor = client.get("/jobs", params={"limit": 1}).json()["next_cursor"]
    wrong = client.get("/jobs", params={"sort": "next_run", "cursor": by_id_cursor})
    assert wrong.status_code == 422


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "a b"}, "q"),
        ({"state": "sleeping"}, "state"),
        ({"tag": "x/y"}, "tag"),
        ({"sort": "age"}, "sort"),
    ],
)
def test_list_jobs_refuses_bad_filters_naming_them(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    response = client.get("/jobs", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", field]


def test_a_bad_tag_is_refused_naming_it(client: TestClient) -> None:
    response = client.put("/jobs/t", json=cron_job(tags=["ok", "not ok"]))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "tags", 1]
    assert client.get("/jobs", params={"limit": 0}).status_code == 422


def test_runs_paginate_newest_first(client: TestClient) -> None:
    client.put("/jobs/r", json=cron_job(paused=True))
    ids = [client.post("/jobs/r/run").json()["id"] for _ in range(3)]
    page = client.get("/jobs/r/runs", params={"limit": 2}).json()
    assert [r["id"] for r in page["items"]] == ids[::-1][:2]
    rest = client.get("/runs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [r["id"] for r in rest["items"]] == [ids[0]]
    assert client.get("/runs", params={"status": "bogus"}).status_code == 422


# Preview ---------------------------------------------------------------------------------------


def test_preview_gives_the_next_fire_times_in_the_zone(client: TestClient) -> None:
    response = client.post(
        "/triggers/preview",
        json={
            "trigger": {"type": "cron", "expression": "0 2 * * 0"},
            "timezone": "America/New_York",
            "count": 3,
        },
    )
    assert response.status_code == 200
    times = response.json()["fire_times"]
    assert len(times) == 3
    assert all("T02:00:00-0" in t for t in times)
    assert response.json()["description"] == "At 02:00 on Sunday"


def test_preview_rejects_a_bad_expression_naming_it(client: TestClient) -> None:
    response = client.post(
        "/triggers/preview", json={"trigger": {"type": "cron", "expression": "0 0 0 0 0"}}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "expression"


def test_cluster_lists_this_node(client: TestClient) -> None:
    body = client.get("/cluster").json()
    [node] = body["nodes"]
    assert node["id"] == body["node_id"]
    assert node["this_node"] is True
    assert 0 <= node["heartbeat_age_s"] < body["node_lease_s"]
    assert node["running"] == 0


def test_the_overview_counts_runs_and_failing_jobs(client: TestClient) -> None:
    empty = client.get("/overview").json()
    assert empty["ended_last_hour"] == dict.fromkeys(
        ["succeeded", "failed", "missed", "skipped", "interrupted", "cancelled"], 0
    )
    assert (empty["running"], empty["failing"], empty["tripped"]) == (0, 0, 0)
    [node] = empty["nodes"]
    assert node["id"] == empty["node_id"]
    client.put("/jobs/later", json=cron_job())
    # Port 9 refuses: the call fails.
    client.put("/jobs/broken", json=cron_job(misfire_grace_time=0.2))
    assert client.post("/jobs/broken/run").status_code == 202
    deadline = time.monotonic() + 10
    while (body := client.get("/overview").json())["ended_last_hour"]["failed"] < 1:
        assert time.monotonic() < deadline, "the run did not fail"
        time.sleep(0.02)
    assert body["ended_last_24h"]["failed"] == 1
    assert (body["failing"], body["failing_jobs"]) == (1, ["broken"])
    # Both fire next at 02:00: the soonest first, then by id.
    assert [fire["job_id"] for fire in body["next_fires"]] == ["broken", "later"]
    assert body["lag"]["calls"] == 1
    counts = client.get("/overview/jobs", params={"job_id": ["broken", "later"]}).json()
    broken, later = counts["items"]
    assert (broken["job_id"], broken["runs"]["failed"], broken["success_rate"]) == (
        "broken",
        1,
        0.0,
    )
    assert broken["last_status"] == "failed"
    assert (later["success_rate"], later["last_status"]) == (None, None)


def test_the_overview_needs_runs_read_and_jobs_read(client: TestClient) -> None:
    key = client.post("/auth/keys", json={"name": "jobs", "scopes": ["jobs:read"]}).json()
    response = client.get("/overview", headers={"Authorization": f"Bearer {key['key']}"})
    assert response.status_code == 403
    assert "runs:read" in response.json()["detail"]
    both = client.post(
        "/auth/keys", json={"name": "both", "scopes": ["jobs:read", "runs:read"]}
    ).json()
    assert client.get("/overview", headers={"Authorization": f"Bearer {both['key']}"}).is_success


def test_overview_job_counts_need_an_id_and_at_most_200(client: TestClient) -> None:
    missing = client.get("/overview/jobs")
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"][-1] == "job_id"
    many = client.get("/overview/jobs", params={"job_id": [str(i) for i in range(201)]})
    assert many.status_code == 422
    assert client.get("/overview", params={"limit": -1}).status_code == 422


def test_a_retry_policy_gets_its_defaults_and_round_trips(client: TestClient) -> None:
    created = client.put("/jobs/r", json=cron_job(retry={"max_attempts": 4}, deadline=600))
    assert created.status_code == 201, created.text
    job = client.get("/jobs/r").json()
    assert job["retry"] == {
        "max_attempts": 4,
        "initial_delay": 1.0,
        "max_delay": 60.0,
        "multiplier": 2.0,
        "jitter": 0.1,
    }
    assert job["deadline"] == 600
    assert client.put("/jobs/n", json=cron_job()).json()["retry"] is None


def test_the_breaker_default_comes_from_the_server_unless_the_job_says() -> None:
    settings = Settings(database_url="memory://", admin_token=TOKEN, max_consecutive_failures=5)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with TestClient(create_app(settings), headers=headers) as client:
        job = client.put("/jobs/d", json=cron_job()).json()
        assert job["max_consecutive_failures"] == 5
        assert (job["consecutive_failures"], job["pause_reason"]) == (0, None)
        own = client.put("/jobs/o", json=cron_job(max_consecutive_failures=2)).json()
        assert own["max_consecutive_failures"] == 2
        off = client.put("/jobs/x", json=cron_job(max_consecutive_failures=None)).json()
        assert off["max_consecutive_failures"] is None
        # Every way of creating a job, not only PUT.
        assert client.post("/jobs", json=cron_job() | {"id": "p"}).status_code == 201
        batch = [cron_job() | {"id": "b"}, cron_job(max_consecutive_failures=None) | {"id": "n"}]
        assert client.post("/jobs:batch", json={"jobs": batch}).status_code == 200
        task = {"task_id": "t", "crontab": "0 * * * *", "target_endpoint": TARGET}
        assert client.post("/tasks", json=task).status_code == 200
        limits = {i: client.get(f"/jobs/{i}").json()["max_consecutive_failures"] for i in "pbnt"}
        assert limits == {"p": 5, "b": 5, "n": None, "t": 5}


def secret_job(**target: Any) -> dict[str, Any]:
    headers = {"Authorization": "Bearer s3cret", "X-Api-Key": "k3y", "X-Plain": "p"}
    return cron_job() | {
        "target": {"url": TARGET, "headers": headers, "secret_headers": ["x-api-key"]} | target
    }


def test_secret_headers_are_never_returned(client: TestClient) -> None:
    created = client.put("/jobs/s", json=secret_job()).json()
    shown = {"Authorization": "***", "X-Api-Key": "***", "X-Plain": "p"}
    assert created["target"]["headers"] == shown
    assert client.get("/jobs/s").json()["target"]["headers"] == shown
    [listed] = client.get("/jobs").json()["items"]
    assert listed["target"]["headers"] == shown
    assert "s3cret" not in client.get("/jobs/s").text


def test_a_secret_sent_back_as_the_mask_keeps_its_stored_value(client: TestClient) -> None:
    client.put("/jobs/s", json=secret_job())
    masked = {"Authorization": "***", "X-Api-Key": "***", "X-Plain": "changed"}
    assert client.put("/jobs/s", json=secret_job(headers=masked)).status_code == 200
    patched = client.patch("/jobs/s", json={"description": "d"})
    assert patched.status_code == 200
    # A plain header holds "***" as it is; a secret one left out is dropped.
    client.put("/jobs/p", json=cron_job() | {"target": {"url": TARGET, "headers": {"A": "***"}}})
    assert client.get("/jobs/p").json()["target"]["headers"] == {"A": "***"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/jobs/new", secret_job(headers={"Authorization": "***"}, secret_headers=[])),
        (
            "POST",
            "/jobs",
            secret_job(headers={"Authorization": "***"}, secret_headers=[]) | {"id": "fresh"},
        ),
        (
            "PUT",
            "/jobs/s",
            secret_job(headers={"X-Plain": "p", "X-Other": "***"}, secret_headers=["X-Other"]),
        ),
    ],
)
def test_the_mask_without_a_stored_secret_is_422(
    client: TestClient, method: str, path: str, body: dict[str, Any]
) -> None:
    client.put("/jobs/s", json=secret_job())
    response = client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"][-2:] == ["target", "headers"]
    assert "there is none: send the value itself" in error["msg"]


def test_secret_headers_must_name_headers(client: TestClient) -> None:
    response = client.put("/jobs/x", json=secret_job(secret_headers=["X-Missing"]))
    assert response.status_code == 422
    assert "'X-Missing', which is not in headers" in response.text


def test_delete_keeps_the_history_unless_asked_to_purge_it(client: TestClient) -> None:
    for job_id in ("keep", "purge"):
        # Port 9 refuses: the call is tried again within the grace, then fails.
        job = cron_job(history={"max_runs": 50}, misfire_grace_time=0.5)
        client.put(f"/jobs/{job_id}", json=job)
        assert client.post(f"/jobs/{job_id}/run").status_code == 202
    deadline = time.monotonic() + 10
    while any(run["finished_at"] is None for run in client.get("/runs").json()["items"]):
        assert time.monotonic() < deadline, "the runs did not finish"
        time.sleep(0.02)
    assert client.get("/jobs/keep").json()["history"] == {"max_runs": 50, "max_age": None}
    assert client.delete("/jobs/keep").status_code == 204
    assert client.delete("/jobs/purge", params={"purge_runs": "true"}).status_code == 204
    kept = {run["job_id"] for run in client.get("/runs").json()["items"]}
    assert kept == {"keep"}


def test_webhook_secrets_are_masked_and_kept_by_the_mask(client: TestClient) -> None:
    hook = {"url": "http://127.0.0.1:9/hook", "secret": "w3bh00k"}
    created = client.put("/jobs/w", json=cron_job(on_failure=hook, on_pause={"url": TARGET}))
    assert created.status_code == 201, created.text
    assert created.json()["on_failure"] == {"url": hook["url"], "secret": "***"}
    assert created.json()["on_pause"] == {"url": TARGET, "secret": None}
    kept = client.put("/jobs/w", json=cron_job(on_failure=hook | {"secret": "***"}))
    assert kept.status_code == 200, kept.text
    response = client.put("/jobs/w", json=cron_job(on_pause={"url": TARGET, "secret": "***"}))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][-2:] == ["on_pause", "secret"]
    assert "w3bh00k" not in client.get("/jobs/w").text


def test_targets_and_metrics_show_each_hosts_limit_and_its_calls_never_sent(
    client: TestClient,
) -> None:
    client.put("/jobs/refused", json=cron_job(misfire_grace_time=30))
    assert client.post("/jobs/refused/run").status_code == 202
    deadline = time.monotonic() + 10
    while True:  # port 9 refuses: the call is tried again, again and again within the grace
        [host] = client.get("/targets").json()["hosts"] or [None]
        if host is not None and host["connect_retries"] >= 2:
            break
        assert time.monotonic() < deadline, "no connection was tried again"
        time.sleep(0.02)
    assert host["host"] == "127.0.0.1:9"
    assert (host["limit"], host["max_concurrency"], host["adaptive"]) == (1, 128, True)
    assert host["last_connect_error"].startswith("cannot connect to 127.0.0.1:9")
    metrics = client.get("/metrics").text
    assert 'kairos_target_concurrency_limit{host="127.0.0.1:9"' in metrics
    assert 'kairos_target_connect_retries_total{host="127.0.0.1:9"' in metrics
