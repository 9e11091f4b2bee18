"""Input an attacker would send, on the API over SQLite: each is a 4xx naming what is wrong,
never a 500, and nothing is written. (Request size limits over real HTTP: ``tests/e2e``.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.errors import InvalidField
from kairos.identity import Scope
from kairos.models import MAX_BODY_BYTES
from kairos.settings import Settings
from tests.support.behind import write_behind

TOKEN = "test-token"
TARGET = "http://127.0.0.1:9/hook"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/kairos.db", admin_token=TOKEN)
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"}) as test:
        yield test


def cron_job(expression: str = "0 2 * * *", **extra: Any) -> dict[str, Any]:
    return {
        "trigger": {"type": "cron", "expression": expression},
        "target": {"url": TARGET},
    } | extra


def with_target(**target: Any) -> dict[str, Any]:
    return cron_job(target={"url": TARGET} | target)


def error_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["detail"][0]
    return error


# Lone surrogates -------------------------------------------------------------------------------


def test_every_route_that_takes_json_refuses_a_lone_surrogate_naming_the_field(
    client: TestClient,
) -> None:
    client.put("/jobs/x", json=cron_job())
    paths = client.get("/openapi.json").json()["paths"]
    json_routes = [
        (method.upper(), re.sub(r"\{\w+\}", "x", path))
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(json_routes) == 9, json_routes
    for method, path in json_routes:
        field = "value" if path.startswith("/secrets/") else "description"
        sent = b'{"%s": "a\\ud800b"%s}' % (
            field.encode(),
            b"" if field == "value" else b', "id": "x"',
        )
        response = client.request(method, path, content=sent, headers=JSON)
        assert error_of(response)["loc"] == ["body", field], (method, path)
        assert "surrogate" in response.text
    assert client.get("/jobs/x").json()["description"] == ""


@pytest.mark.parametrize(
    ("sent", "loc"),
    [
        # The lean path of PUT (plain application/json) and FastAPI's (with a charset).
        (json.dumps(cron_job(description="\ud800")), ["body", "description"]),
        (json.dumps(with_target(body={"k": ["ok", "\udfff"]})), ["body", "target", "body", "k", 1]),
        (json.dumps(with_target(headers={"\udc00": "v"})), ["body", "target", "headers"]),
        # The UTF-8 bytes of a surrogate, which Python's JSON reader also takes.
        (
            b'{"trigger": {"type": "date", "run_date": "\xed\xa0\x80"}}',
            ["body", "trigger", "run_date"],
        ),
        ('"\\uD834"', ["body"]),
    ],
)
@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_a_lone_surrogate_anywhere_in_a_job_is_named(
    client: TestClient, sent: str | bytes, loc: list[Any], content_type: str
) -> None:
    response = client.put("/jobs/s", content=sent, headers={"Content-Type": content_type})
    assert error_of(response)["loc"] == loc
    assert client.get("/jobs/s").status_code == 404


def test_a_surrogate_pair_is_text(client: TestClient) -> None:
    sent = json.dumps(cron_job(description="\U0001f600 and \\ud800 as text")).encode()
    assert b"\\ud83d\\ude00" in sent
    response = client.put("/jobs/emoji", content=sent, headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "\U0001f600 and \\ud800 as text"


# Time zones ------------------------------------------------------------------------------------


@pytest.mark.parametrize("zone", ["America", "Europe", "America/", "Etc", "../zoneinfo", "x" * 300])
def test_a_zone_that_is_a_folder_or_no_name_is_422_naming_timezone(
    client: TestClient, zone: str
) -> None:
    response = client.put("/jobs/z", json=cron_job(timezone=zone))
    assert error_of(response)["loc"] == ["body", "timezone"]
    preview = {"trigger": {"type": "cron", "expression": "0 2 * * *"}, "timezone": zone}
    assert error_of(client.post("/triggers/preview", json=preview))["loc"] == ["body", "timezone"]


# Keys, previews, cron forms ----------------------------------------------------------------------


@pytest.mark.parametrize("expires_in", [1e300, 315_360_001, 10**30])
def test_a_key_lifetime_past_ten_years_is_422_naming_it(
    client: TestClient, expires_in: float
) -> None:
    response = client.post(
        "/auth/keys", json={"name": "k", "scopes": ["jobs:read"], "expires_in": expires_in}
    )
    assert error_of(response)["loc"] == ["body", "expires_in"]
    limit = {"name": "k", "scopes": ["jobs:read"], "expires_in": 315_360_000}
    assert client.post("/auth/keys", json=limit).status_code == 201


def test_a_key_made_without_the_api_has_the_same_limit(client: TestClient) -> None:
    accounts = client.app.state.accounts  # type: ignore[attr-defined]
    scopes = frozenset({Scope.JOBS_READ})

    async def create(expires_in_s: float) -> object:
        return await accounts.create_key("k", scopes, expires_in_s=expires_in_s, actor="cli:x")

    with pytest.raises(InvalidField) as caught:
        client.portal.call(create, 1e300)
    assert caught.value.loc == ("expires_in",)


@pytest.mark.parametrize(
    "trigger",
    [
        {"type": "interval", "weeks": 5200},
        {"type": "interval", "days": 36_600, "start_date": "2999-12-31T00:00:00Z"},
        {"type": "cron", "expression": "0 0 1 1 *"},
    ],
)
def test_a_preview_stops_at_the_last_year_a_trigger_may_name(
    client: TestClient, trigger: dict[str, Any]
) -> None:
    response = client.post("/triggers/preview", json={"trigger": trigger, "count": 1000})
    assert response.status_code == 200, response.text
    years = [int(fire[:4]) for fire in response.json()["fire_times"]]
    assert years
    assert max(years) <= 2999
    assert len(years) < 1000


def test_last_and_nth_days_are_previewed_and_described(client: TestClient) -> None:
    body = {"trigger": {"type": "cron", "expression": "0 9 * * 5#3"}, "count": 3}
    response = client.post("/triggers/preview", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["description"] == "At 09:00 on the third Friday of the month"
    assert client.put("/jobs/l", json=cron_job("0 9 L * 5L")).status_code == 201
    refused = client.put("/jobs/l", json=cron_job("0 9 L/2 * *"))
    assert error_of(refused)["loc"] == ["body", "trigger", "expression"]


def test_a_stored_crontab_without_words_still_lists(client: TestClient, tmp_path: Path) -> None:
    from sqlalchemy import update

    from kairos.store.schema import jobs

    assert client.put("/jobs/odd", json=cron_job(paused=True)).status_code == 201
    stored = cron_job("0 0 * * 5#x", paused=True)
    change = update(jobs).where(jobs.c.id == "odd").values(spec=json.dumps(stored))
    write_behind(f"sqlite:///{tmp_path}/kairos.db", change)
    assert client.get("/jobs").json()["items"][0]["trigger"]["expression"] == "0 0 * * 5#x"
    client.post("/ui/login", data={"token": TOKEN})
    page = client.get("/ui/jobs")
    assert page.status_code == 200
    assert "0 0 * * 5#x" in page.text


# Headers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"X-Token": "a\x00b"}, "'X-Token' must not hold control characters"),
        ({"X-Token": "a\rb"}, "'X-Token' must not hold control characters"),
        ({"X-Token": "a\nInjected: 1"}, "'X-Token' must not hold control characters"),
        ({"X-Token": "a\x1bb"}, "'X-Token' must not hold control characters"),
        ({"X-To\x00ken": "v"}, "invalid header name"),
        ({"X-Token(1)": "v"}, "invalid header name"),
        ({"Transfer-Encoding": "chunked"}, "'Transfer-Encoding' is set by the HTTP client"),
        ({"content-length": "5"}, "'content-length' is set by the HTTP client"),
        ({"Connection": "close"}, "'Connection'"),
        ({"Host": "elsewhere"}, "'Host'"),
        ({"Upgrade": "websocket"}, "'Upgrade'"),
        ({"TE": "trailers"}, "'TE'"),
        ({"Keep-Alive": "timeout=5"}, "'Keep-Alive'"),
        ({"Trailer": "X"}, "'Trailer'"),
    ],
)
def test_a_header_that_breaks_http_is_422_naming_it(
    client: TestClient, headers: dict[str, str], words: str
) -> None:
    error = error_of(client.put("/jobs/h", json=with_target(headers=headers)))
    assert error["loc"] == ["body", "target", "headers"]
    assert words in error["msg"]
    assert client.get("/jobs/h").status_code == 404


def test_a_tab_and_any_text_are_fine_in_a_header(client: TestClient) -> None:
    headers = {"X-Note": 'a\tb, ünïcode; q="1"', "X-Empty": ""}
    assert client.put("/jobs/h", json=with_target(headers=headers)).status_code == 201


def test_a_target_body_is_capped_once_serialized(client: TestClient) -> None:
    text = "é" * (MAX_BODY_BYTES // 2)
    assert client.put("/jobs/b", json=with_target(body=text)).status_code == 201
    for body in (text + "x", {"k": text}):
        response = client.put("/jobs/b", json=with_target(body=body))
        error = error_of(response)
        assert error["loc"][:3] == ["body", "target", "body"]
        assert f"at most {MAX_BODY_BYTES} bytes" in error["msg"]


# Ids -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", [".", ".."])
def test_dot_ids_are_refused_wherever_an_id_is_given(client: TestClient, job_id: str) -> None:
    encoded = job_id.replace(".", "%2E")  # clients resolve a plain /jobs/.. to /
    assert error_of(client.put(f"/jobs/{encoded}", json=cron_job()))["loc"] == ["path", "job_id"]
    refused = client.put(f"/jobs/{encoded}", json=cron_job(), headers={"Authorization": "x"})
    assert refused.status_code == 401  # the lean path's checks come after the token's
    assert error_of(client.post("/jobs", json=cron_job(id=job_id)))["loc"] == ["body", "id"]
    batch = client.post("/jobs:batch", json={"jobs": [cron_job(id=job_id)]})
    assert error_of(batch)["loc"] == ["body", "jobs", 0, "id"]
    task = {"task_id": job_id, "crontab": "0 * * * *", "target_endpoint": TARGET}
    assert error_of(client.post("/tasks", json=task))["loc"] == ["body", "task_id"]
    assert client.get("/jobs").json()["items"] == []
    assert client.put("/jobs/...", json=cron_job()).status_code == 201
