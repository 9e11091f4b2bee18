"""Secrets by reference, end to end on SQLite: a real HTTP target receives the values of
``${env:...}`` and ``${secret:...}``, and no answer, audit record, UI page or log line shows
them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.settings import Settings
from tests.support.target import ThreadedTarget

TOKEN = "test-token"
ENV_VALUE = "env-value-4711"
SECRET_VALUE = "secret-value-0815"
NEW_VALUE = "secret-value-rotated-9999"
VALUES = (ENV_VALUE, SECRET_VALUE, NEW_VALUE)


@pytest.fixture
def target() -> Iterator[ThreadedTarget]:
    server = ThreadedTarget().start()
    yield server
    server.stop()


def serve(tmp_path: Path, **settings: Any) -> TestClient:
    config = Settings(database_url=f"sqlite:///{tmp_path}/kairos.db", admin_token=TOKEN, **settings)
    return TestClient(create_app(config), headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("KAIROS_TEST_CRAWLER_TOKEN", ENV_VALUE)
    with serve(tmp_path, secrets_key="test-secrets-key-0123456789") as test:
        yield test


def job(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "trigger": {"type": "cron", "expression": "0 2 * * *"},
        "target": {
            "url": url,
            "headers": {
                "Authorization": "Bearer ${secret:crawler}",
                "X-Env": "${env:KAIROS_TEST_CRAWLER_TOKEN}",
            },
            "body": {"token": "${secret:crawler}", "literal": "$${env:NOT_A_REFERENCE}"},
        },
    } | extra


def finished_run(client: TestClient, job_id: str) -> dict[str, Any]:
    """Start a run now and wait for it to finish; fail after 10 s."""
    run_id = client.post(f"/jobs/{job_id}/run").json()["id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        run: dict[str, Any] = client.get(f"/runs/{run_id}").json()
        if run["finished_at"] is not None:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish in 10 s")


def test_a_worker_process_receives_the_values_as_the_main_process_resolved_them(
    tmp_path: Path, target: ThreadedTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIROS_TEST_CRAWLER_TOKEN", ENV_VALUE)
    with serve(tmp_path, secrets_key="test-secrets-key-0123456789", http_workers=1) as client:
        client.put("/secrets/crawler", json={"value": SECRET_VALUE})
        client.put("/jobs/crawl", json=job(target.url("/crawl")))
        assert finished_run(client, "crawl")["status"] == "succeeded"
    [delivery] = target.deliveries()
    assert delivery.headers["Authorization"] == f"Bearer {SECRET_VALUE}"
    assert delivery.headers["X-Env"] == ENV_VALUE


def test_the_target_receives_the_values_and_nothing_shows_them(
    client: TestClient, target: ThreadedTarget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert client.put("/secrets/crawler", json={"value": SECRET_VALUE}).status_code == 201
    document = job(target.url("/crawl"))
    created = client.put("/jobs/crawl", json=document)
    assert created.status_code == 201, created.text
    run = finished_run(client, "crawl")
    assert run["status"] == "succeeded", run
    [delivery] = target.deliveries()
    assert delivery.headers["Authorization"] == f"Bearer {SECRET_VALUE}"
    assert delivery.headers["X-Env"] == ENV_VALUE
    assert delivery.body == ('{"token":"' + SECRET_VALUE + '","literal":"${env:NOT_A_REFERENCE}"}')

    # Replaced: the next call carries the new value (this node forgets its cached one).
    assert client.put("/secrets/crawler", json={"value": NEW_VALUE}).status_code == 200
    assert finished_run(client, "crawl")["status"] == "succeeded"
    assert target.deliveries()[-1].headers["Authorization"] == f"Bearer {NEW_VALUE}"

    shown = client.get("/jobs/crawl").json()
    assert shown["target"]["headers"] == document["target"]["headers"]
    assert shown["target"]["body"] == document["target"]["body"]
    texts = [
        created.text,
        client.get("/jobs/crawl").text,
        client.get("/jobs").text,
        client.get("/secrets").text,
        client.get("/audit").text,
        client.get("/runs").text,
    ]
    client.post("/ui/login", data={"token": TOKEN})
    texts += [client.get("/ui/jobs/crawl").text, client.get("/ui/jobs/crawl/edit").text]
    texts.append(caplog.text)
    for text in texts:
        for value in VALUES:
            assert value not in text
    audit = client.get("/audit", params={"target": "crawler"}).json()["items"]
    assert [(r["action"], r["detail"]) for r in audit] == [
        ("secret.set", None),
        ("secret.set", None),
    ]


def test_a_document_of_references_round_trips_exactly(
    client: TestClient, target: ThreadedTarget
) -> None:
    client.put("/secrets/crawler", json={"value": SECRET_VALUE})
    hook = {"url": "https://hooks.example.com/kairos", "secret": "${secret:crawler}"}
    client.put("/jobs/crawl", json=job(target.url("/crawl"), on_failure=hook))
    shown = client.get("/jobs/crawl").json()
    read_only = ("id", "state", "next_run_time", "created_at", "updated_at")
    read_only += ("consecutive_failures", "pause_reason", "waiting_for_task")
    document = {k: v for k, v in shown.items() if k not in read_only}
    assert client.put("/jobs/crawl", json=document).status_code == 200
    again = client.get("/jobs/crawl").json()
    assert {k: v for k, v in again.items() if k not in read_only} == document
    assert again["on_failure"]["secret"] == "${secret:crawler}"


def test_references_this_server_cannot_resolve_are_refused_each_named(
    client: TestClient, target: ThreadedTarget
) -> None:
    document = job(target.url("/crawl"))
    document["target"]["headers"]["X-Other"] = "${env:KAIROS_TEST_UNSET_VARIABLE}"
    refused = client.put("/jobs/crawl", json=document)
    assert refused.status_code == 422, refused.text
    problems = [(e["loc"], e["msg"]) for e in refused.json()["detail"]]
    assert problems == [
        (
            ["body", "target", "headers", "Authorization"],
            "${secret:crawler}: no secret has that name",
        ),
        (
            ["body", "target", "headers", "X-Other"],
            "${env:KAIROS_TEST_UNSET_VARIABLE}: KAIROS_TEST_UNSET_VARIABLE is not set in the "
            "server's environment",
        ),
        (["body", "target", "body", "token"], "${secret:crawler}: no secret has that name"),
    ]
    assert client.get("/jobs/crawl").status_code == 404
    batch = client.post("/jobs:batch", json={"jobs": [{"id": "b"} | document]})
    assert batch.status_code == 422, batch.text
    assert client.get("/jobs/b").status_code == 404


def test_a_secret_deleted_later_fails_the_run_naming_the_reference(
    client: TestClient, target: ThreadedTarget
) -> None:
    client.put("/secrets/crawler", json={"value": SECRET_VALUE})
    client.put("/jobs/crawl", json=job(target.url("/crawl")))
    assert client.delete("/secrets/crawler").status_code == 204
    assert client.delete("/secrets/crawler").status_code == 404
    run = finished_run(client, "crawl")
    assert run["status"] == "failed"
    assert run["error"] == "not called: ${secret:crawler}: no secret has that name"
    assert target.deliveries() == []


def test_without_a_key_no_secret_is_kept(tmp_path: Path, target: ThreadedTarget) -> None:
    with serve(tmp_path) as client:
        refused = client.put("/secrets/crawler", json={"value": SECRET_VALUE})
        assert refused.status_code == 409
        assert "KAIROS_SECRETS_KEY" in refused.json()["detail"]
        put = client.put("/jobs/crawl", json=job(target.url("/crawl")))
        assert put.status_code == 422
        assert "KAIROS_SECRETS_KEY is not set" in put.text


def test_secrets_are_for_admins_and_names_are_checked(client: TestClient) -> None:
    body = {"name": "writer", "scopes": ["jobs:read", "jobs:write"]}
    key = client.post("/auth/keys", json=body).json()["key"]
    writer = {"Authorization": f"Bearer {key}"}
    assert client.put("/secrets/x", json={"value": "v"}, headers=writer).status_code == 403
    assert client.get("/secrets", headers=writer).status_code == 403
    assert client.delete("/secrets/x", headers=writer).status_code == 403
    bad = client.put("/secrets/has%20space", json={"value": "v"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["path", "name"]
    empty = client.put("/secrets/x", json={"value": ""})
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["loc"] == ["body", "value"]
    assert client.get("/secrets").json() == {"items": []}
