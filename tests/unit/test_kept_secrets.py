"""A URL's password is a secret, like a secret header; and a secret kept by ``"***"`` only ever
goes to the origin it was given for. On the API over SQLite, as a ``jobs:write`` key that cannot
read the job would try it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.settings import Settings

TOKEN = "test-token"
URL = "https://deploy:pa55word@hooks.example.com:8443/run?x=1"
SHOWN = "https://deploy:***@hooks.example.com:8443/run?x=1"
SECRET_HEADERS = {"Authorization": "Bearer hush", "X-Api-Key": "k-123", "X-Team": "ops"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/kairos.db", admin_token=TOKEN)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as test:
        yield test


def job(url: str = URL, **target: Any) -> dict[str, Any]:
    return {"trigger": {"type": "cron", "expression": "0 2 * * *"}, "target": {"url": url} | target}


def stored(client: TestClient, job_id: str) -> dict[str, Any]:
    """The job as the store holds it, secrets and all."""
    record = client.portal.call(client.app.state.scheduler.get_job, job_id)  # type: ignore[attr-defined]
    spec: dict[str, Any] = record.spec.model_dump(mode="json")
    return spec


def error_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert isinstance(error, dict)
    return error


def writer(client: TestClient) -> dict[str, str]:
    """A key that may change jobs but not read them."""
    body = {"name": "writer", "scopes": ["jobs:write"]}
    return {"Authorization": f"Bearer {client.post('/auth/keys', json=body).json()['key']}"}


# A URL's password --------------------------------------------------------------------------------


def test_a_urls_password_is_shown_as_the_mask_everywhere(client: TestClient) -> None:
    hook = {"url": "https://ops:h00kpw@hooks.example.com/kairos", "secret": "w"}
    created = client.put("/jobs/p", json=job() | {"on_failure": hook})
    assert created.status_code == 201, created.text
    assert created.json()["target"]["url"] == SHOWN
    assert created.json()["on_failure"]["url"] == "https://ops:***@hooks.example.com/kairos"
    shown = [client.get("/jobs/p").text, client.get("/jobs").text, client.get("/audit").text]
    client.post("/ui/login", data={"token": TOKEN})
    shown += [client.get("/ui/jobs/p").text, client.get("/ui/jobs/p/edit").text]
    for text in shown:
        assert "pa55word" not in text
        assert "h00kpw" not in text
    assert stored(client, "p")["target"]["url"] == URL
    assert "deploy:***@hooks.example.com" in shown[-1]


def test_what_get_returns_put_takes_back_keeping_the_password(client: TestClient) -> None:
    hook = {"url": "https://ops:h00kpw@hooks.example.com/kairos"}
    client.put("/jobs/p", json=job() | {"on_pause": hook, "description": "old"})
    shown = client.get("/jobs/p").json()
    assert client.put("/jobs/p", json=shown | {"description": "new"}).status_code == 200
    assert client.patch("/jobs/p", json={"target": shown["target"]}).status_code == 200
    assert stored(client, "p")["target"]["url"] == URL
    assert stored(client, "p")["on_pause"]["url"] == hook["url"]
    assert stored(client, "p")["description"] == "new"


@pytest.mark.parametrize("path", ["/jobs/new", "/jobs/plain"])
def test_the_mask_for_a_password_never_stored_is_422_naming_the_url(
    client: TestClient, path: str
) -> None:
    client.put("/jobs/plain", json=job("https://hooks.example.com:8443/run"))
    error = error_of(client.put(path, json=job(SHOWN)))
    assert error["loc"] == ["body", "target", "url"]
    assert "there is none: send the password itself" in error["msg"]


# Kept secrets stay with their origin ----------------------------------------------------------


@pytest.mark.parametrize(
    "elsewhere",
    [
        "https://attacker.example:8443/run",  # another host
        "https://hooks.example.com/run",  # another port (443)
        "http://hooks.example.com:8443/run",  # another scheme
    ],
)
def test_masked_headers_cannot_follow_a_target_to_another_origin(
    client: TestClient, elsewhere: str
) -> None:
    target = {"headers": SECRET_HEADERS, "secret_headers": ["X-Api-Key"]}
    assert client.put("/jobs/s", json=job(**target)).status_code == 201
    as_writer = writer(client)
    assert client.get("/jobs/s", headers=as_writer).status_code == 403
    masked = {"Authorization": "***", "X-Api-Key": "***", "X-Team": "ops"}
    moved = {"url": elsewhere, "headers": masked, "secret_headers": ["X-Api-Key"]}
    for response in (
        client.patch("/jobs/s", json={"target": moved}, headers=as_writer),
        client.put("/jobs/s", json=job(**moved), headers=as_writer),
        client.post("/jobs:batch", json={"jobs": [job(**moved) | {"id": "s"}]}, headers=as_writer),
    ):
        error = error_of(response)
        assert error["loc"][-2:] == ["target", "headers"]
        assert "the secret must be sent again for a new host" in error["msg"]
    assert stored(client, "s")["target"]["url"] == URL
    # Sent again, the secrets may go there; and the mask still keeps them on the same origin.
    resent = moved | {"headers": SECRET_HEADERS}
    assert client.patch("/jobs/s", json={"target": resent}, headers=as_writer).status_code == 200
    same_origin = moved | {"url": elsewhere + "/other?path"}
    assert (
        client.patch("/jobs/s", json={"target": same_origin}, headers=as_writer).status_code == 200
    )
    assert stored(client, "s")["target"]["headers"] == SECRET_HEADERS


def test_a_masked_password_cannot_follow_a_url_to_another_host(client: TestClient) -> None:
    client.put("/jobs/p", json=job())
    moved = "https://deploy:***@attacker.example:8443/run?x=1"
    error = error_of(client.patch("/jobs/p", json={"target": {"url": moved}}))
    assert error["loc"] == ["body", "target", "url"]
    assert "the secret must be sent again for a new host" in error["msg"]
    upper = "https://deploy:***@HOOKS.example.com:8443/elsewhere"
    assert client.patch("/jobs/p", json={"target": {"url": upper}}).status_code == 200
    assert (
        stored(client, "p")["target"]["url"]
        == "https://deploy:pa55word@hooks.example.com:8443/elsewhere"
    )


@pytest.mark.parametrize("field", ["on_failure", "on_pause"])
def test_a_webhooks_masked_secret_cannot_follow_it_to_another_host(
    client: TestClient, field: str
) -> None:
    hook = {"url": "https://hooks.example.com/kairos", "secret": "whsec-1"}
    client.put("/jobs/w", json=job() | {field: hook})
    moved = {"url": "https://attacker.example/kairos", "secret": "***"}
    error = error_of(client.patch("/jobs/w", json={field: moved}))
    assert error["loc"] == ["body", field, "secret"]
    assert "the secret must be sent again for a new host" in error["msg"]
    password = {"url": "https://u:***@attacker.example/kairos"}
    assert error_of(client.patch("/jobs/w", json={field: password}))["loc"] == [
        "body",
        field,
        "url",
    ]
    assert stored(client, "w")[field] == hook


def test_the_audit_log_never_holds_a_urls_password(client: TestClient) -> None:
    client.put("/jobs/p", json=job())
    client.patch("/jobs/p", json={"target": {"url": "https://deploy:n3wpw@hooks.example.com/"}})
    records = client.get("/audit", params={"target": "p"}).json()["items"]
    assert [r["action"] for r in records] == ["job.update", "job.create"]
    assert "pa55word" not in json.dumps(records)
    assert "n3wpw" not in json.dumps(records)
    assert records[0]["detail"]["target"]["url"] == "https://deploy:***@hooks.example.com/"
