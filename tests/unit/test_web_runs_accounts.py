"""The web UI's run page and its admin pages, without a browser: what a run page shows, the
attempts of a fire linked together, cancelling, users and keys managed from the pages, and a
navigation that shows only what the viewer's scopes open (kept on a refusal)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.settings import Settings
from kairos.web.highlight import json_excerpt
from tests.support.fakes import FakeClock
from tests.support.server import wait_until
from tests.support.target import ThreadedTarget

ADMIN = "admin-token-for-the-web-tests"
API = {"Authorization": f"Bearer {ADMIN}"}
FAILURE = '{"error": "quota <exceeded>", "retry": true}'
NAV = re.compile(r'<nav aria-label="Main">(.*?)</nav>', re.S)


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(Settings(database_url="memory://", admin_token=ADMIN))
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def target() -> Iterator[ThreadedTarget]:
    with ThreadedTarget() as server:
        yield server


def job_calling(url: str, **more: Any) -> dict[str, Any]:
    return {"trigger": {"type": "cron", "expression": "0 2 * * *"}, "target": {"url": url}} | more


def wait_for_status(client: TestClient, run_id: int, status: str) -> None:
    def reached() -> bool:
        now: str = client.get(f"/runs/{run_id}", headers=API).json()["status"]
        return now == status

    wait_until(reached, 15, what=f"run {run_id} to be {status}")


def sign_in(client: TestClient, token: str = ADMIN) -> str:
    """Sign in with a token; return the page's CSRF token."""
    response = client.post("/ui/login", data={"token": token, "next": "/ui/jobs"})
    assert response.status_code == 303, response.text
    found = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/ui/jobs").text)
    assert found is not None
    return found[1]


def nav_links(page: str) -> list[str]:
    found = NAV.search(page)
    assert found is not None, "the page has no navigation"
    return re.findall(r">([^<]+)</a>", found[1])


def key_for(client: TestClient, *scopes: str) -> str:
    body = {"name": "-".join(scopes), "scopes": list(scopes)}
    key: str = client.post("/auth/keys", json=body, headers=API).json()["key"]
    return key


# The run page -----------------------------------------------------------------------------------


def test_a_failed_runs_page_shows_its_error_its_retry_and_the_request_masked(
    client: TestClient, target: ThreadedTarget
) -> None:
    url = target.url("/report?status=503&body=" + quote(FAILURE))
    job = {
        "trigger": {"type": "cron", "expression": "0 2 * * *"},
        "target": {
            "url": url,
            "headers": {"Authorization": "Bearer hush", "X-Team": "ops"},
            "body": {"report": "nightly"},
        },
        "retry": {"max_attempts": 2, "initial_delay": 0, "jitter": 0},
    }
    assert client.put("/jobs/nightly", json=job, headers=API).status_code == 201
    first = client.post("/jobs/nightly/run", headers=API).json()

    def ended() -> list[dict[str, Any]]:
        runs = client.get("/runs?job_id=nightly", headers=API).json()["items"]
        return runs if [r["status"] for r in runs] == ["failed", "failed"] else []

    wait_until(ended, 15, what="two failed attempts")
    second = ended()[0]
    sign_in(client)
    page = client.get(f"/ui/runs/{first['id']}")
    assert page.status_code == 200
    text = page.text
    assert re.search(r'id="run-error">[^<]*503', text)
    assert '<span class="json-key">&#34;error&#34;</span>' in text
    assert '<span class="json-string">&#34;quota &lt;exceeded&gt;&#34;</span>' in text
    assert '<span class="json-literal">true</span>' in text
    assert re.search(r'<span class="badge failed">failed</span></h1>', text)
    assert f'href="/ui/runs/{second["id"]}">run {second["id"]}</a>' in text  # the retry
    assert "<strong>run {}</strong> (this one)".format(first["id"]) in text
    request = re.search(r'<pre id="sent-request"[^>]*>(.*?)</pre>', text, re.S)
    assert request is not None
    sent = request[1]
    assert sent.startswith(f"POST {url.replace('&', '&amp;')}\n")
    assert "Authorization: ***" in sent
    assert "hush" not in text
    assert "X-Team: ops" in sent
    assert "X-Kairos-Job-Id: nightly" in sent
    assert f"X-Kairos-Run-Id: {first['id']}" in sent
    assert "X-Kairos-Attempt: 1" in sent
    assert "Idempotency-Key: nightly@" in sent
    assert "{&#34;report&#34;:&#34;nightly&#34;}" in sent
    retry = client.get(f"/ui/runs/{second['id']}").text
    assert "X-Kairos-Attempt: 2" in retry
    assert f'href="/ui/runs/{first["id"]}">run {first["id"]}</a>' in retry
    listed = client.get("/ui/runs?job_id=nightly").text
    assert f'href="/ui/runs/{first["id"]}"' in listed


def test_an_unknown_or_malformed_run_is_a_page_saying_so(client: TestClient) -> None:
    sign_in(client)
    for run_id in ("123456", "not-a-number", "9" * 40):
        page = client.get(f"/ui/runs/{run_id}")
        assert page.status_code == 404, run_id
        assert "There is no run" in page.text
        assert "Jobs</a>" in page.text  # the navigation stays


def test_a_slow_run_is_cancelled_from_its_page(client: TestClient, target: ThreadedTarget) -> None:
    job = job_calling(target.url("/slow?delay=30"), retry={"max_attempts": 3})
    assert client.put("/jobs/slow", json=job, headers=API).status_code == 201
    run = client.post("/jobs/slow/run", headers=API).json()
    wait_for_status(client, run["id"], "running")
    csrf = sign_in(client)
    assert ">Cancel</button>" in client.get(f"/ui/runs/{run['id']}").text
    response = client.post(f"/ui/runs/{run['id']}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/runs/{run['id']}?note=Cancelled."
    page = client.get(response.headers["location"]).text
    assert '<span class="badge cancelled">cancelled</span>' in page
    assert ">Cancel</button>" not in page
    assert "cancelled by admin-token" in page
    runs = client.get("/runs?job_id=slow", headers=API).json()["items"]
    assert [(r["id"], r["status"]) for r in runs] == [(run["id"], "cancelled")]  # no retry


def test_cancelling_an_ended_run_says_it_had_ended(
    client: TestClient, target: ThreadedTarget
) -> None:
    assert client.put("/jobs/once", json=job_calling(target.url()), headers=API).status_code == 201
    run = client.post("/jobs/once/run", headers=API).json()
    wait_for_status(client, run["id"], "succeeded")
    csrf = sign_in(client)
    assert ">Cancel</button>" not in client.get(f"/ui/runs/{run['id']}").text
    response = client.post(f"/ui/runs/{run['id']}/cancel", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert "note=It+had+already+ended" in response.headers["location"]
    assert client.get(f"/runs/{run['id']}", headers=API).json()["status"] == "succeeded"


def test_cancelling_needs_jobs_write(client: TestClient, target: ThreadedTarget) -> None:
    slow = job_calling(target.url("/slow?delay=30"))
    assert client.put("/jobs/slow", json=slow, headers=API).status_code == 201
    run = client.post("/jobs/slow/run", headers=API).json()
    csrf = sign_in(client, key_for(client, "jobs:read", "runs:read"))
    assert ">Cancel</button>" not in client.get(f"/ui/runs/{run['id']}").text
    refused = client.post(f"/ui/runs/{run['id']}/cancel", data={"csrf_token": csrf})
    assert refused.status_code == 403
    assert "&#39;jobs:write&#39; scope" in refused.text
    assert nav_links(refused.text) == ["Overview", "Jobs", "Runs"]
    assert client.get(f"/runs/{run['id']}", headers=API).json()["status"] != "cancelled"


@pytest.mark.parametrize(
    ("excerpt", "coloured"),
    [
        (
            '{"error": "<b>no</b>", "code": 7, "ok": false}',
            '{\n  <span class="json-key">&#34;error&#34;</span>: <span class="json-string">'
            '&#34;&lt;b&gt;no&lt;/b&gt;&#34;</span>,\n  <span class="json-key">&#34;code&#34;'
            '</span>: <span class="json-number">7</span>,\n  <span class="json-key">&#34;ok'
            '&#34;</span>: <span class="json-literal">false</span>\n}',
        ),
        (
            '[{"cut": "sho',
            '[{<span class="json-key">&#34;cut&#34;</span>: '
            '<span class="json-string">&#34;sho</span>',
        ),
    ],
)
def test_a_json_excerpt_is_coloured_and_escaped(excerpt: str, coloured: str) -> None:
    assert str(json_excerpt(excerpt)) == coloured


def test_an_excerpt_that_is_not_json_is_left_plain() -> None:
    assert json_excerpt("<html>Bad gateway</html>") is None
    assert json_excerpt("ok") is None


# Navigation and refusals ------------------------------------------------------------------------


def test_the_navigation_shows_only_what_the_scopes_open(client: TestClient) -> None:
    sign_in(client)
    assert nav_links(client.get("/ui/jobs").text) == [
        "Overview",
        "Jobs",
        "Runs",
        "Cluster",
        "Audit log",
        "Users",
        "API keys",
    ]
    client.cookies.clear()
    sign_in(client, key_for(client, "jobs:read"))
    jobs = client.get("/ui/jobs").text
    assert nav_links(jobs) == ["Jobs"]
    for path in ("/ui/users", "/ui/keys", "/ui/audit", "/ui/cluster", "/ui/runs"):
        assert f'href="{path}"' not in jobs
        refused = client.get(path)
        assert refused.status_code == 403, path
        assert nav_links(refused.text) == ["Jobs"], path  # the refusal keeps the navigation
        assert "Signed in as" in refused.text


def test_admin_pages_and_their_changes_need_admin(client: TestClient) -> None:
    csrf = sign_in(client, key_for(client, "jobs:read", "jobs:write", "runs:read"))
    sent = {"csrf_token": csrf, "name": "eve", "password": "a long password", "scopes": "admin"}
    assert client.post("/ui/users", data=sent).status_code == 403
    assert client.post("/ui/keys", data=sent).status_code == 403
    assert client.get("/auth/keys", headers=API).json()["items"][-1]["name"] != "eve"


# Users ------------------------------------------------------------------------------------------


def test_an_admin_adds_a_user_sets_scopes_resets_the_password_and_removes_it(
    client: TestClient,
) -> None:
    csrf = sign_in(client)
    added = client.post(
        "/ui/users",
        data={
            "csrf_token": csrf,
            "name": "bob",
            "password": "bobs first password",
            "scopes": ["jobs:read"],
        },
    )
    assert added.status_code == 303
    listed = client.get(added.headers["location"]).text
    assert "User bob added." in listed
    assert re.search(r'value="jobs:read" checked', listed)
    assert token_scopes(client, "bob", "bobs first password") == "jobs:read"

    scopes = {"csrf_token": csrf, "scopes": ["jobs:read", "runs:read"]}
    assert client.post("/ui/users/bob/scopes", data=scopes).status_code == 303
    assert token_scopes(client, "bob", "bobs first password") == "jobs:read runs:read"

    password = {"csrf_token": csrf, "password": "bobs second password"}
    assert client.post("/ui/users/bob/password", data=password).status_code == 303
    assert token_scopes(client, "bob", "bobs first password") is None
    assert token_scopes(client, "bob", "bobs second password") == "jobs:read runs:read"

    removed = client.post("/ui/users/bob/remove", data={"csrf_token": csrf})
    assert removed.status_code == 303
    assert 'id="user-bob"' not in client.get("/ui/users").text
    assert token_scopes(client, "bob", "bobs second password") is None
    audit = client.get("/audit?target=bob", headers=API).json()["items"]
    assert [(record["action"], record["actor"]) for record in reversed(audit)] == [
        ("user.add", "admin-token"),
        ("user.scopes", "admin-token"),
        ("user.passwd", "admin-token"),
        ("user.remove", "admin-token"),
    ]


def token_scopes(client: TestClient, name: str, password: str) -> str | None:
    """The scopes of the token signing in as ``name`` gets; None when refused."""
    response = client.post("/auth/token", data={"username": name, "password": password})
    if response.status_code != 200:
        return None
    scope: str = response.json()["scope"]
    return scope


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"name": "no spaces"}, "name: 1-64 of letters"),
        ({"scopes": []}, "scopes: name at least one scope"),
        ({"scopes": ["root"]}, "scopes: no scope &#39;root&#39;"),
        ({"password": "short"}, "password: "),
    ],
)
def test_a_bad_user_is_refused_naming_the_field(
    client: TestClient, changes: dict[str, Any], says: str
) -> None:
    csrf = sign_in(client)
    sent = {"csrf_token": csrf, "name": "carol", "password": "a long password"}
    sent |= {"scopes": ["jobs:read"]} | changes
    response = client.post("/ui/users", data=sent)
    assert response.status_code == 422
    assert says in response.text
    assert token_scopes(client, "carol", "a long password") is None


def test_a_second_user_of_one_name_and_a_change_to_a_missing_user_are_said(
    client: TestClient,
) -> None:
    csrf = sign_in(client)
    sent = {"csrf_token": csrf, "name": "dan", "password": "a long password", "scopes": "admin"}
    assert client.post("/ui/users", data=sent).status_code == 303
    again = client.post("/ui/users", data=sent)
    assert again.status_code == 409
    assert "name: a user &#39;dan&#39; exists already" in again.text
    missing = client.post("/ui/users/nobody/password", data=sent)
    assert missing.status_code == 404
    assert "User &#39;nobody&#39; not found" in missing.text
    assert client.post("/ui/users/dan/rename", data=sent).status_code == 404


# API keys ---------------------------------------------------------------------------------------


def test_a_key_is_shown_once_works_and_stops_working_once_revoked(client: TestClient) -> None:
    csrf = sign_in(client)
    sent = {"csrf_token": csrf, "name": "deploys", "scopes": ["jobs:read"], "expires_in_days": ""}
    created = client.post("/ui/keys", data=sent)
    assert created.status_code == 201
    shown = re.search(r'<pre class="mono" aria-label="The new key">([^<]+)</pre>', created.text)
    assert shown is not None
    key = shown[1]
    assert client.get("/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    listed = client.get("/ui/keys").text
    assert key not in listed  # shown once
    key_id = re.search(r'<tr id="key-([^"]+)"', listed)
    assert key_id is not None
    assert "deploys" in listed
    revoked = client.post(f"/ui/keys/{key_id[1]}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    assert 'class="badge failed">revoked<' in client.get(revoked.headers["location"]).text
    assert client.get("/jobs", headers={"Authorization": f"Bearer {key}"}).status_code == 401


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"name": ""}, "name: 1-128 characters"),
        ({"scopes": []}, "scopes: name at least one scope"),
        ({"expires_in_days": "soon"}, "expires in days: a number of days above 0"),
        ({"expires_in_days": "-1"}, "expires in days: a number of days above 0"),
        ({"expires_in_days": "1e9"}, "expires in days: a number of days above 0"),
    ],
)
def test_a_bad_key_is_refused_naming_the_field(
    client: TestClient, changes: dict[str, Any], says: str
) -> None:
    csrf = sign_in(client)
    sent = {"csrf_token": csrf, "name": "ci", "scopes": ["jobs:read"]} | changes
    response = client.post("/ui/keys", data=sent)
    assert response.status_code == 422
    assert says in response.text
    assert client.get("/auth/keys", headers=API).json()["items"] == []


def test_revoking_a_missing_key_is_said(client: TestClient) -> None:
    csrf = sign_in(client)
    response = client.post("/ui/keys/nope/revoke", data={"csrf_token": csrf})
    assert response.status_code == 404
    assert "not found" in response.text


def test_expired_keys_are_marked_expired_apart_from_revoked_ones_and_listed_after_live_ones() -> (
    None
):
    clock = FakeClock(datetime(2026, 5, 1, 12, tzinfo=UTC))
    app = create_app(Settings(database_url="memory://", admin_token=ADMIN), clock=clock)
    with TestClient(app, follow_redirects=False) as client:
        made = {}
        for name, expires_in in (("short", 3600), ("revoked", None), ("long", 30 * 86_400)):
            body = {"name": name, "scopes": ["jobs:read"], "expires_in": expires_in}
            made[name] = client.post("/auth/keys", json=body, headers=API).json()
            clock.advance(1)  # each created a second after the one before
        revoked = client.delete(f"/auth/keys/{made['revoked']['id']}", headers=API)
        assert revoked.status_code == 204
        clock.advance(3600)  # "short" is past its expiry time: refused, and shown so
        short = {"Authorization": f"Bearer {made['short']['key']}"}
        assert client.get("/jobs", headers=short).status_code == 401
        sign_in(client)
        listed = client.get("/ui/keys").text
        rows = dict(re.findall(r'<tr id="key-([^"]+)" class="key-(\w+)">', listed))
        ids = {name: key["id"] for name, key in made.items()}
        assert rows == {ids["long"]: "active", ids["short"]: "expired", ids["revoked"]: "revoked"}
        assert list(rows) == [ids["long"], ids["short"], ids["revoked"]]  # live, expired, revoked
        cells = {
            key_id: re.search(rf'<tr id="key-{key_id}".*?</tr>', listed, re.S)[0]  # type: ignore[index]
            for key_id in rows
        }
        assert 'class="badge expired">expired</span>' in cells[ids["short"]]
        assert "revoked" not in cells[ids["short"]]
        assert 'class="badge failed">revoked</span>' in cells[ids["revoked"]]
        assert "expired" not in cells[ids["revoked"]]
        assert "expires <time" in cells[ids["long"]]
        assert "Revoke" in cells[ids["long"]]
        assert "Revoke" not in cells[ids["short"]]  # it opens nothing already
