"""The run page and the admin pages in a real headless Chromium against a real ``kairos serve``
and a real target: a failed call's error and response, cancelling a slow call, users and API
keys managed by an admin, and a reader who sees no admin links."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.browser.conftest import reload_until
from tests.support.server import KairosProcess, TargetProcess, wait_until

pytestmark = pytest.mark.browser

ANSWER = {"error": "quota exceeded", "limit": 100, "retry": False}


def start_run(server: KairosProcess, job_id: str, url: str) -> int:
    """A job calling ``url`` (fired by hand, never by its schedule); the id of its run."""
    job = {"trigger": {"type": "cron", "expression": "0 3 1 1 *"}, "target": {"url": url}}
    with server.client() as api:
        assert api.put(f"/jobs/{job_id}", json=job).status_code in (200, 201)
        run_id: int = api.post(f"/jobs/{job_id}/run").json()["id"]
    return run_id


def test_a_failed_runs_page_shows_its_error_and_the_response(
    signed_in: Any, server: KairosProcess, target: TargetProcess
) -> None:
    url = target.url("/failing?status=500&body=" + quote(json.dumps(ANSWER)))
    run_id = start_run(server, "failing", url)
    page = signed_in
    page.goto("/ui/runs?job_id=failing")
    reload_until(page, ".badge.failed")
    page.get_by_role("link", name=str(run_id), exact=True).click()
    page.get_by_role("heading", name=f"Run {run_id}").wait_for()
    assert "500" in page.locator("#run-error").inner_text()
    excerpt = page.locator("#response-excerpt")
    assert json.loads(excerpt.inner_text()) == ANSWER
    assert excerpt.locator("span.json-key").first.inner_text() == '"error"'
    key_colour = excerpt.locator("span.json-key").first.evaluate("e => getComputedStyle(e).color")
    plain_colour = excerpt.evaluate("e => getComputedStyle(e).color")
    assert key_colour != plain_colour  # coloured, by this server's stylesheet
    assert "X-Kairos-Attempt: 1" in page.locator("#sent-request").inner_text()
    assert page.get_by_role("button", name="Cancel").count() == 0


def test_a_slow_run_is_cancelled_from_its_page(
    signed_in: Any, server: KairosProcess, target: TargetProcess
) -> None:
    run_id = start_run(server, "slow", target.url("/slow?delay=60"))
    page = signed_in
    page.goto(f"/ui/runs/{run_id}")
    reload_until(page, ".badge.running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("status").filter(has_text="Cancelled.").wait_for()
    assert page.locator("h1 .badge").inner_text() == "cancelled"
    assert page.get_by_role("button", name="Cancel").count() == 0
    with server.client() as api:
        assert api.get(f"/runs/{run_id}").json()["status"] == "cancelled"


def test_an_admin_manages_a_user(signed_in: Any, browser: Any, server: KairosProcess) -> None:
    page = signed_in
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="Users").click()
    adding = page.get_by_role("form", name="Add a user")
    adding.get_by_label("Name").fill("bea")
    adding.get_by_label("Password").fill("bea's first password")
    adding.get_by_role("button", name="Add user").click()
    page.get_by_role("status").filter(has_text="User bea added.").wait_for()
    assert password_works(server, "bea", "bea's first password")

    row = page.locator("tr#user-bea")
    row.get_by_label("admin").check()
    row.get_by_role("button", name="Save scopes").click()
    page.get_by_role("status").filter(has_text="The scopes of bea are saved").wait_for()
    assert page.locator("tr#user-bea").get_by_label("admin").is_checked()

    row = page.locator("tr#user-bea")
    row.get_by_label("New password for bea").fill("bea's second password")
    row.get_by_role("button", name="Reset password").click()
    page.get_by_role("status").filter(has_text="The password of bea is reset").wait_for()
    assert not password_works(server, "bea", "bea's first password")
    assert password_works(server, "bea", "bea's second password")

    page.get_by_role("button", name="Remove bea").click()
    page.get_by_role("status").filter(has_text="User bea removed.").wait_for()
    assert page.locator("tr#user-bea").count() == 0
    assert not password_works(server, "bea", "bea's second password")


def password_works(server: KairosProcess, name: str, password: str) -> bool:
    sign_in = {"username": name, "password": password}
    return httpx.post(f"{server.base_url}/auth/token", data=sign_in).status_code == 200


def test_an_admin_creates_a_key_shown_once_and_revokes_it(
    signed_in: Any, server: KairosProcess
) -> None:
    page = signed_in
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("link", name="API keys").click()
    creating = page.get_by_role("form", name="Create a key")
    creating.get_by_label("Name").fill("deploy bot")
    creating.get_by_role("button", name="Create key").click()
    key = page.get_by_label("The new key").inner_text().strip()
    bearer = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{server.base_url}/jobs", headers=bearer).status_code == 200
    page.get_by_role("link", name="API keys").click()
    assert key not in page.content()  # shown once
    row = page.locator("tr", has_text="deploy bot")
    row.get_by_role("button", name="Revoke").click()
    page.get_by_role("status").filter(has_text="revoked").wait_for()
    assert page.locator("tr", has_text="deploy bot").locator(".badge.failed").inner_text() == (
        "revoked"
    )
    wait_until(
        lambda: httpx.get(f"{server.base_url}/jobs", headers=bearer).status_code == 401,
        5,
        what="the revoked key to be refused",
    )


def test_a_reader_sees_no_admin_links_and_a_refusal_keeps_the_navigation(
    browser: Any, server: KairosProcess
) -> None:
    with server.client() as api:
        key = api.post("/auth/keys", json={"name": "reader", "scopes": ["jobs:read"]}).json()
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/ui/login")
    page.get_by_text("Sign in with a token instead").click()
    page.get_by_label("Admin token or API key").fill(key["key"])
    page.get_by_role("button", name="Sign in with the token").click()
    page.get_by_role("heading", name="Jobs").wait_for()
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link").all_inner_texts() == ["Jobs"]
    page.goto("/ui/users")
    assert "'admin' scope" in page.get_by_role("alert").inner_text()
    assert nav.get_by_role("link").all_inner_texts() == ["Jobs"]
    context.close()
