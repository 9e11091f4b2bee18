"""A job document as ``GET /jobs/{id}`` answers it is taken back unchanged by ``PUT /jobs/{id}``
(on its lean path and on FastAPI's), ``POST /jobs`` and ``POST /jobs:batch``: the read-only
fields are ignored, and an ``id`` that is not the URL's is a 422 naming ``id``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.api.schemas import JOB_READ_ONLY, JobOut
from kairos.models import JobSpec
from kairos.settings import Settings

TOKEN = "test-token"
TARGET = "http://127.0.0.1:9/hook"
LEAN = {"Content-Type": "application/json"}
STANDARD = {"Content-Type": "application/json; charset=utf-8"}  # not the lean path's
JOB = {
    "trigger": {"type": "cron", "expression": "0 2 * * *"},
    "timezone": "Europe/Berlin",
    "target": {
        "url": TARGET,
        "method": "POST",
        "headers": {"Authorization": "Bearer abc", "X-Team": "ops"},
        "body": {"kind": "nightly"},
        "timeout": 60,
    },
    "retry": {"max_attempts": 3},
    "max_consecutive_failures": 5,
    "auto_resume_after": 600,
    "description": "Builds yesterday's report",
    "tags": ["reports", "nightly"],
}


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(Settings(database_url="memory://", admin_token=TOKEN))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


def put(client: TestClient, path: str, document: Any, headers: dict[str, str]) -> Any:
    return client.put(path, content=json.dumps(document), headers=headers)


def spec_part(shown: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in shown.items() if k not in (*JOB_READ_ONLY, "id")}


def test_the_read_only_fields_are_those_a_job_shows_beyond_its_spec() -> None:
    assert set(JobOut.model_fields) - set(JobSpec.model_fields) - {"id"} == JOB_READ_ONLY


@pytest.mark.parametrize("headers", [LEAN, STANDARD], ids=["lean", "standard"])
def test_what_get_answers_put_takes_back_unchanged(
    client: TestClient, headers: dict[str, str]
) -> None:
    assert client.put("/jobs/nightly", json=JOB).status_code == 201
    shown = client.get("/jobs/nightly").json()
    assert set(JOB_READ_ONLY) <= set(shown)

    again = put(client, "/jobs/nightly", shown, headers)

    assert again.status_code == 200, again.text
    assert spec_part(again.json()) == spec_part(shown)
    assert again.json()["target"]["headers"]["Authorization"] == "***"
    stored = client.portal.call(client.app.state.scheduler.get_job, "nightly")  # type: ignore[attr-defined]
    assert stored.spec.target.headers["Authorization"] == "Bearer abc"  # the kept secret


@pytest.mark.parametrize("headers", [LEAN, STANDARD], ids=["lean", "standard"])
def test_the_read_only_fields_are_ignored_whatever_they_say(
    client: TestClient, headers: dict[str, str]
) -> None:
    claims = {
        "state": "finished",
        "next_run_time": "2999-01-01T00:00:00Z",
        "created_at": "not a date",
        "updated_at": None,
        "consecutive_failures": 99,
        "pause_reason": "made up",
        "waiting_for_task": "nothing",
    }
    response = put(client, "/jobs/claims", JOB | claims, headers)
    assert response.status_code == 201, response.text
    shown = response.json()
    assert (shown["state"], shown["consecutive_failures"], shown["pause_reason"]) == (
        "scheduled",
        0,
        None,
    )
    assert shown["waiting_for_task"] is None
    assert shown["next_run_time"] < "2999"


@pytest.mark.parametrize("headers", [LEAN, STANDARD], ids=["lean", "standard"])
def test_an_id_that_is_not_the_urls_is_422_naming_id_and_changes_nothing(
    client: TestClient, headers: dict[str, str]
) -> None:
    client.put("/jobs/nightly", json=JOB)
    shown = client.get("/jobs/nightly").json()

    response = put(client, "/jobs/nightly", shown | {"id": "other", "description": "x"}, headers)

    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "id"]
    assert "'other' is not the URL's job id 'nightly'" in error["msg"]
    assert client.get("/jobs/nightly").json()["description"] == JOB["description"]
    assert client.get("/jobs/other").status_code == 404


def test_a_bad_spec_field_beside_the_read_only_ones_is_still_named(client: TestClient) -> None:
    document = JOB | {"state": "scheduled", "max_instances": 0}
    for headers in (LEAN, STANDARD):
        response = put(client, "/jobs/bad", document, headers)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", "max_instances"]
    unknown = put(client, "/jobs/bad", JOB | {"stat": "x"}, LEAN)
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "stat"]


def test_batch_and_post_take_the_documents_get_answers(client: TestClient) -> None:
    # No secret header: a new job's "***" keeps nothing, and is refused (test_kept_secrets).
    plain = JOB | {"target": {"url": TARGET, "headers": {"X-Team": "ops"}}}
    for job_id in ("a", "b"):
        client.put(f"/jobs/{job_id}", json=plain)
    listed = client.get("/jobs").json()["items"]

    batch = client.post("/jobs:batch", json={"jobs": [*listed, listed[0] | {"id": "c"}]})

    assert batch.status_code == 200, batch.text
    assert batch.json() == {"created": 1, "replaced": 2}
    copy = client.post("/jobs", json=client.get("/jobs/a").json() | {"id": "d"})
    assert copy.status_code == 201, copy.text
    assert spec_part(copy.json()) == spec_part(client.get("/jobs/a").json())
