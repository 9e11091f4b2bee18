"""``POST /jobs:apply``: job documents compared with the server's jobs, applied all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.settings import Settings

TOKEN = "apply-token"
TARGET = "http://127.0.0.1:9/hook"


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(Settings(database_url="memory://", admin_token=TOKEN))
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as test_client:
        yield test_client


def doc(job_id: str, **extra: Any) -> dict[str, Any]:
    trigger = {"type": "cron", "expression": "0 2 * * *"}
    return {"id": job_id, "trigger": trigger, "target": {"url": TARGET}} | extra


def apply(client: TestClient, jobs: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    answer = client.post("/jobs:apply", json={"jobs": jobs, **options})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_dry_run_says_what_would_happen_and_writes_nothing(client: TestClient) -> None:
    plan = apply(client, [doc("a"), doc("b")], dry_run=True)
    assert plan == {
        "dry_run": True,
        "created": ["a", "b"],
        "changed": {},
        "unchanged": [],
        "deleted": [],
    }
    assert client.get("/jobs/a").status_code == 404


def test_applying_the_same_documents_again_changes_nothing(client: TestClient) -> None:
    assert apply(client, [doc("a"), doc("b")])["created"] == ["a", "b"]
    before = client.get("/jobs/a").json()
    again = apply(client, [doc("a"), doc("b", description="")])
    assert (again["created"], again["changed"], again["unchanged"]) == ([], {}, ["a", "b"])
    # Not rewritten: its schedule does not restart.
    assert client.get("/jobs/a").json()["updated_at"] == before["updated_at"]


def test_a_changed_document_names_the_fields_that_change(client: TestClient) -> None:
    apply(client, [doc("a"), doc("b")])
    plan = apply(client, [doc("a", description="nightly", max_instances=2), doc("b")])
    assert plan["changed"] == {"a": ["description", "max_instances"]}
    assert plan["unchanged"] == ["b"]
    assert client.get("/jobs/a").json()["description"] == "nightly"


def test_prune_deletes_only_the_selected_jobs_no_document_names(client: TestClient) -> None:
    apply(client, [doc("a", tags=["team"]), doc("b", tags=["team"]), doc("c")])
    plan = apply(client, [doc("a", tags=["team"])], prune=True, selector="tag=team")
    assert plan["deleted"] == ["b"]
    assert client.get("/jobs/b").status_code == 404
    assert client.get("/jobs/c").status_code == 200  # not the selector's
    # Without prune, a selector deletes nothing.
    assert apply(client, [], selector="tag=team")["deleted"] == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prune": True}, "give one (tag=<tag>)"),
        ({"prune": True, "selector": "team"}, "a selector is tag=<tag>"),
        ({"selector": "tag=no spaces"}, "a selector is tag=<tag>"),
    ],
)
def test_a_bad_selector_is_a_422_naming_it(
    client: TestClient, options: dict[str, Any], message: str
) -> None:
    answer = client.post("/jobs:apply", json={"jobs": [doc("a")], **options})
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "selector"]
    assert message in error["msg"]
    assert client.get("/jobs/a").status_code == 404


def test_one_invalid_document_refuses_the_whole_apply_naming_it(client: TestClient) -> None:
    apply(client, [doc("keep", tags=["t"])])
    bad = doc("b", trigger={"type": "cron", "expression": "61 * * * *"})
    answer = client.post(
        "/jobs:apply", json={"jobs": [doc("a"), bad], "prune": True, "selector": "tag=t"}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"][:4] == ["body", "jobs", 1, "trigger"]
    assert client.get("/jobs/a").status_code == 404
    assert client.get("/jobs/keep").status_code == 200
    twice = client.post("/jobs:apply", json={"jobs": [doc("a"), doc("a")]})
    assert twice.status_code == 422
    assert twice.json()["detail"][0]["loc"] == ["body", "jobs", 1, "id"]


def test_an_apply_is_one_audit_record_with_its_summary(client: TestClient) -> None:
    apply(client, [doc("a", tags=["t"]), doc("b", tags=["t"])])
    apply(client, [doc("a", tags=["t"], description="x"), doc("c")], prune=True, selector="tag=t")
    records = client.get("/audit", params={"limit": 10}).json()["items"]
    applies = [r for r in records if r["action"] == "jobs.apply"]
    assert len(applies) == 2
    assert len(records) == 2  # no record per job besides
    assert applies[0]["detail"] == {
        "created": ["c"],
        "changed": {"a": ["description"]},
        "unchanged": 0,
        "deleted": ["b"],
    }


def test_a_document_with_masked_secrets_is_unchanged_and_keeps_them(client: TestClient) -> None:
    secret = {"url": TARGET, "headers": {"Authorization": "Bearer hush"}}
    apply(client, [doc("a", target=secret)])
    shown = client.get("/jobs/a").json()["target"]
    assert shown["headers"]["Authorization"] == "***"
    plan = apply(client, [doc("a", target=shown)])
    assert plan["unchanged"] == ["a"]
