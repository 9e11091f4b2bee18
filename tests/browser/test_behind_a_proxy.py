"""The web UI of a real ``kairos serve`` driven in Chromium through a real reverse proxy that
serves it under ``/scheduler`` (stripping the prefix and saying it in ``X-Forwarded-Prefix``):
sign in, land on the overview, list jobs, open a job, follow links, sign out, and never leave
``/scheduler``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import PASSWORD
from tests.support.proxy import prefix_proxy
from tests.support.server import KairosProcess, TargetProcess

pytestmark = pytest.mark.browser

_URLS = """() => Array.from(document.querySelectorAll(
    "a[href], form[action], [hx-get], [hx-post], link[href], script[src]"
)).map(el => el.getAttribute("href") || el.getAttribute("action") || el.getAttribute("hx-get")
    || el.getAttribute("hx-post") || el.getAttribute("src"))"""


@pytest.fixture(scope="module")
def proxied(
    tmp_path_factory: pytest.TempPathFactory, target: TargetProcess
) -> Iterator[tuple[str, KairosProcess]]:
    db = f"sqlite:///{tmp_path_factory.mktemp('proxied')}/k.db"
    with KairosProcess(db, env={"KAIROS_TRUSTED_PROXIES": "127.0.0.1/32, ::1"}) as server:
        command = ["users", "add", "ann", "-s", "admin", "--password-stdin", "--db", db]
        added = subprocess.run(
            [sys.executable, "-m", "kairos", *command],
            input=PASSWORD,
            capture_output=True,
            text=True,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        job = {
            "trigger": {"type": "interval", "seconds": 1},
            "target": {"url": target.url("/proxied")},
        }
        with server.client() as api:
            assert api.put("/jobs/behind-the-proxy", json=job).status_code == 201
        with prefix_proxy(server.base_url) as proxy:
            yield proxy, server


def is_htmx(response: Any) -> bool:
    return bool(response.request.headers.get("hx-request"))


def outside(page: Any) -> list[str]:
    urls: list[str] = page.evaluate(_URLS)
    return [url for url in urls if not url.startswith(("/scheduler/", "?", "#"))]


def test_the_whole_ui_through_a_proxy_stays_under_its_prefix(
    browser: Any, proxied: tuple[str, KairosProcess]
) -> None:
    proxy, _ = proxied
    context = browser.new_context(base_url=proxy)
    page = context.new_page()
    page.set_default_timeout(15_000)
    asked: list[str] = []
    failures: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.on("response", lambda r: failures.append(r.url) if r.status >= 400 else None)

    def here(path: str) -> None:
        assert page.url.startswith(f"{proxy}/scheduler{path}"), page.url
        assert outside(page) == []

    page.goto("/scheduler/")  # the server's / redirects to its UI, under the prefix
    here("/ui/login?next=")
    page.get_by_label("User name").fill("ann")
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_response(lambda r: "/scheduler/ui/overview" in r.url and is_htmx(r)):
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_role("heading", name="Overview").wait_for()  # where the UI lands
        here("/ui/overview")  # and every count's link
    # ... and its figures are live, asked for again through the proxy.
    page.locator("#ov-hour-succeeded").wait_for()
    session = next(c for c in context.cookies() if c["name"] == "kairos_session")
    assert session["path"] == "/scheduler/ui"
    # The stylesheet came through the proxy, so the page is styled.
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    page.get_by_role("heading", name="Jobs").wait_for()
    here("/ui/jobs")

    page.get_by_role("link", name="behind-the-proxy", exact=True).click()
    page.get_by_role("heading", name="behind-the-proxy").wait_for()
    here("/ui/jobs/behind-the-proxy")
    page.locator("#job-history .badge.succeeded").first.wait_for()  # live, through the proxy
    page.get_by_role("link", name="24 h", exact=True).click()
    page.wait_for_url("**/scheduler/ui/jobs/behind-the-proxy?chart=24h")
    here("/ui/jobs/behind-the-proxy?chart=24h")
    # A mark is the link to its run. A second apart on a day's axis the marks overlap: the last
    # one drawn is on top, the one a pointer reaches.
    page.locator("a.mark").last.click()
    page.get_by_role("heading", name="Run").first.wait_for()
    here("/ui/runs/")

    for name, path in (("Runs", "/ui/runs"), ("Cluster", "/ui/cluster"), ("API keys", "/ui/keys")):
        page.get_by_role("link", name=name, exact=True).click()
        page.get_by_role("heading", name=name).first.wait_for()
        here(path)
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_role("link", name="New job").click()
    here("/ui/new")
    page.get_by_label("Cron expression").fill("0 2 * * 0")
    page.locator("#preview").get_by_text("At 02:00 on Sunday").wait_for()  # htmx, through it
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("User name").wait_for()
    here("/ui/login")

    assert [url for url in asked if not url.startswith(f"{proxy}/scheduler/")] == []
    assert failures == []
    context.close()
