"""The overview in a real headless Chromium against a real ``kairos serve`` and a real target:
where the UI lands, its figures those of ``GET /overview``, each count's link to the list
behind it, live without a reload, refused without its scopes, at a phone's width in the dark.
(Behind a proxy: ``test_behind_a_proxy``.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.conftest import PASSWORD
from tests.support.server import ADMIN_TOKEN, KairosProcess, TargetProcess, wait_until

pytestmark = pytest.mark.browser

ENDED = ("succeeded", "failed", "missed", "skipped", "interrupted", "cancelled")
DAILY = {"type": "cron", "expression": "0 3 * * *"}
SHOWN = """(id) => parseInt(document.getElementById(id).textContent, 10)"""


@pytest.fixture(scope="module")
def api(server: KairosProcess, target: TargetProcess) -> Iterator[httpx.Client]:
    """The API of a server with two daily jobs, one whose calls succeed and one whose fail,
    run now (twice, once) and ended."""
    with server.client() as client:
        for job_id, path in (("fine", "/fine"), ("broken", "/broken?status=500")):
            body = {"trigger": DAILY, "target": {"url": target.url(path)}}
            assert client.put(f"/jobs/{job_id}", json=body).status_code == 201
        for job_id in ("fine", "fine", "broken"):
            assert client.post(f"/jobs/{job_id}/run").status_code == 202
        wait_until(lambda: ended(client) == (2, 1), 15, what="three runs ended")
        yield client


def ended(api: httpx.Client) -> tuple[int, int]:
    """Runs succeeded and failed in the last hour, as the API counts them."""
    hour = api.get("/overview").json()["ended_last_hour"]
    return hour["succeeded"], hour["failed"]


def shown(page: Any, element_id: str) -> int:
    figure: int = page.evaluate(SHOWN, element_id)
    return figure


def sign_in(page: Any) -> None:
    page.goto("/ui")
    page.get_by_label("User name").fill("ann")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Overview", exact=True).wait_for()


@pytest.fixture
def overview(browser: Any, server: KairosProcess, api: httpx.Client) -> Iterator[Any]:
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page)
    yield page
    context.close()


def test_the_ui_lands_on_the_overview_showing_the_figures_of_the_api(
    overview: Any, api: httpx.Client
) -> None:
    page = overview
    assert page.url.endswith("/ui/overview")
    nav = page.get_by_role("navigation", name="Main").get_by_role("link")
    assert nav.all_inner_texts()[:2] == ["Overview", "Jobs"]
    figures = api.get("/overview").json()
    for status in ENDED:
        assert shown(page, f"ov-hour-{status}") == figures["ended_last_hour"][status], status
        assert shown(page, f"ov-day-{status}") == figures["ended_last_24h"][status], status
    for element_id, field in (("ov-running", "running"), ("ov-queued", "queued")):
        assert shown(page, element_id) == figures[field]
    assert shown(page, "ov-tripped") == figures["tripped"] == 0
    assert (figures["failing"], figures["failing_jobs"]) == (1, ["broken"])
    failing = page.get_by_role("region", name="Failing jobs")
    assert failing.get_by_role("link").all_inner_texts() == ["broken"]
    fires = page.get_by_role("region", name="Next fires")
    names = fires.locator("tbody tr td:first-child").all_inner_texts()
    assert names == [fire["job_id"] for fire in figures["next_fires"]] == ["broken", "fine"]
    due = fires.locator("time").first
    assert due.inner_text().startswith("in ")
    assert due.get_attribute("title")  # the time itself, on hover
    assert shown(page, "ov-nodes") == len(figures["nodes"]) == 1
    assert page.get_by_text("newest first").is_visible()


def test_each_count_opens_the_list_it_counted(overview: Any) -> None:
    page = overview
    for status, job_id in (("failed", "broken"), ("succeeded", "fine")):
        page.get_by_role("link", name=f"{status} in the last hour").click()
        page.wait_for_url(f"**/ui/runs?status={status}")
        page.get_by_role("heading", name="Runs").wait_for()
        first = page.locator("#run-list tbody tr").first
        assert first.locator(".badge").inner_text() == status
        assert first.locator("td").nth(1).inner_text() == job_id
        badges = page.locator("#run-list tbody .badge").all_inner_texts()
        assert set(badges) == {status}
        page.go_back()
    page.get_by_role("region", name="Failing jobs").get_by_role("link", name="broken").click()
    page.get_by_role("heading", name="broken").wait_for()
    page.go_back()
    page.get_by_role("link", name="tripped jobs").click()
    page.wait_for_url("**/ui/jobs?state=tripped")
    assert page.get_by_text("No jobs match these filters.").is_visible()
    page.go_back()
    page.get_by_role("link", name="node alive").click()  # an admin may see the cluster
    page.get_by_role("heading", name="Cluster").wait_for()


def test_a_run_that_ends_shows_on_the_overview_without_a_reload(
    overview: Any, api: httpx.Client
) -> None:
    page = overview
    page.evaluate("window.sameDocument = true")
    page.focus("#ov-hour-succeeded")
    before = shown(page, "ov-hour-succeeded")
    assert shown(page, "ov-day-succeeded") == before
    assert api.post("/jobs/fine/run").status_code == 202
    wait_until(lambda: ended(api)[0] == before + 1, 15, what="the run to end")
    page.wait_for_function(f"() => ({SHOWN})('ov-hour-succeeded') === {before + 1}")
    assert shown(page, "ov-day-succeeded") == before + 1
    assert page.evaluate("window.sameDocument") is True  # never reloaded
    assert page.evaluate("document.activeElement.id") == "ov-hour-succeeded"  # focus kept


def test_a_viewer_without_runs_read_lands_on_the_jobs_and_is_refused_the_overview(
    browser: Any, server: KairosProcess, api: httpx.Client
) -> None:
    key = api.post("/auth/keys", json={"name": "reader", "scopes": ["jobs:read"]}).json()
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/ui")
    page.get_by_text("Sign in with a token instead").click()
    page.get_by_label("Admin token or API key").fill(key["key"])
    page.get_by_role("button", name="Sign in with the token").click()
    page.get_by_role("heading", name="Jobs", exact=True).wait_for()
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link").all_inner_texts() == ["Jobs"]
    page.goto("/ui/overview")
    assert "'runs:read' scope" in page.get_by_role("alert").inner_text()
    assert nav.get_by_role("link").all_inner_texts() == ["Jobs"]  # the refusal keeps the nav
    context.close()


def test_the_overview_fits_a_phone_in_the_dark(
    browser: Any, server: KairosProcess, api: httpx.Client
) -> None:
    context = browser.new_context(
        base_url=server.base_url, viewport={"width": 390, "height": 844}, color_scheme="dark"
    )
    context.add_cookies(
        [{"name": "kairos_session", "value": ADMIN_TOKEN, "url": f"{server.base_url}/ui"}]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/ui/overview")
    page.get_by_role("heading", name="Runs ended").wait_for()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 20, 24)"  # the dark palette
    context.close()
