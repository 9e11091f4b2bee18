"""The web UI mounted by another app under ``/scheduler/ui``, in a real headless Chromium: sign
in, create a job, see it listed, and never leave the prefix (links, forms, htmx, assets,
redirects, the session cookie); create a job that calls a function of the host app, and see
it run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kairos import Kairos
from kairos.settings import Settings
from tests.support.host import UI, host_app, serving_in_thread

pytestmark = pytest.mark.browser

TOKEN = "an-admin-token-for-the-embedded-ui"
GREETED: list[tuple[str, int]] = []
"""The calls of the host app's task ``greet``."""
# Every URL a page names: where links go, forms post, htmx asks, assets come from.
_URLS = """() => Array.from(document.querySelectorAll(
    "a[href], form[action], [hx-get], [hx-post], link[href], script[src]"
)).map(el => el.getAttribute("href") || el.getAttribute("action") || el.getAttribute("hx-get")
    || el.getAttribute("hx-post") || el.getAttribute("src"))"""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = Path(tmp_path_factory.mktemp("embedded")) / "app.db"
    kairos = Kairos(settings=Settings(database_url=f"sqlite:///{db}", admin_token=TOKEN))

    @kairos.task()
    def greet(name: str, times: int = 1) -> str:
        GREETED.append((name, times))
        return f"hello {name}"

    with serving_in_thread(host_app(kairos)) as base_url:
        yield base_url


def outside_the_prefix(page: Any) -> list[str]:
    urls: list[str] = page.evaluate(_URLS)
    return [url for url in urls if not url.startswith((f"{UI}/", "?", "#"))]


def sign_in(page: Any, host: str) -> None:
    page.goto(UI)
    assert page.url.startswith(f"{host}{UI}/login?next=")
    assert outside_the_prefix(page) == []
    page.get_by_text("Sign in with a token instead").click()
    page.get_by_label("Admin token or API key").fill(TOKEN)
    page.get_by_role("button", name="Sign in with the token").click()
    page.get_by_role("heading", name="Overview").wait_for()
    assert page.url == f"{host}{UI}/overview"
    assert outside_the_prefix(page) == []
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    page.get_by_role("heading", name="Jobs").wait_for()
    assert page.url == f"{host}{UI}/jobs"


def test_the_ui_under_a_prefix_signs_in_creates_a_job_and_stays_there(
    browser: Any, host: str
) -> None:
    context = browser.new_context(base_url=host)
    page = context.new_page()
    page.set_default_timeout(15_000)
    failures: list[str] = []
    page.on("response", lambda r: failures.append(r.url) if r.status >= 400 else None)

    sign_in(page, host)
    session = next(c for c in context.cookies() if c["name"] == "kairos_session")
    assert (session["path"], session["httpOnly"], session["sameSite"]) == (UI, True, "Strict")

    page.get_by_role("link", name="New job").click()
    assert page.url == f"{host}{UI}/new"
    assert outside_the_prefix(page) == []
    page.get_by_label("Id").fill("from-the-host")
    page.get_by_label("Cron expression").fill("0 2 * * 0")
    page.locator("#preview").get_by_text("At 02:00 on Sunday").wait_for()  # htmx, prefixed
    page.get_by_label("URL").fill("http://127.0.0.1:9/hook")
    page.get_by_role("button", name="Create job").click()
    page.get_by_role("heading", name="from-the-host").wait_for()
    assert page.url == f"{host}{UI}/jobs/from-the-host"
    assert outside_the_prefix(page) == []

    page.get_by_role("link", name="Jobs").click()
    page.locator("tr#job-from-the-host").wait_for()
    assert page.url == f"{host}{UI}/jobs"
    assert outside_the_prefix(page) == []
    # The stylesheet came from under the prefix, so the page is styled.
    assert page.evaluate("getComputedStyle(document.body).margin") == "0px"
    assert failures == []
    context.close()


def test_the_ui_under_a_prefix_creates_a_python_job_for_a_task_of_the_host_and_it_runs(
    browser: Any, host: str
) -> None:
    context = browser.new_context(base_url=host)
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, host)

    page.get_by_role("link", name="New job").click()
    page.get_by_label("Id").fill("greeting")
    page.get_by_label("Cron expression").fill("0 2 * * 0")
    assert page.get_by_label("URL").is_visible()
    assert page.get_by_label("Positional arguments").is_hidden()
    page.get_by_label("Python function").check()
    # The HTTP part is hidden (CSS alone), the python part shown.
    assert page.get_by_label("URL").is_hidden()
    assert page.get_by_label("Task").evaluate("el => el.tagName") == "SELECT"
    page.get_by_label("Task").select_option("greet")
    page.get_by_label("Positional arguments").fill('["the host"]')
    page.get_by_label("Keyword arguments").fill('{"times": "twice"}')
    page.get_by_role("button", name="Create job").click()
    # The task's signature is checked as the API checks it, and the error shown at its field.
    page.locator("#kwargs-error").get_by_text("valid integer").wait_for()
    assert page.get_by_label("Python function").is_checked()
    assert page.get_by_label("URL").is_hidden()
    page.get_by_label("Keyword arguments").fill('{"times": 2}')
    page.get_by_role("button", name="Create job").click()
    page.get_by_role("heading", name="greeting").wait_for()
    assert page.url == f"{host}{UI}/jobs/greeting"
    assert page.get_by_text("task greet").is_visible()
    assert page.get_by_text("Waiting for a node").count() == 0

    page.get_by_role("link", name="Jobs").click()
    page.locator("tr#job-greeting").wait_for()
    page.get_by_role("link", name="greeting", exact=True).click()
    page.get_by_role("heading", name="greeting").wait_for()
    page.get_by_role("button", name="Run now").click()
    page.get_by_text("queued").wait_for()

    # The run shows up by itself: the page's live history works under the host's prefix too.
    page.locator("#job-history .table-wrap .badge.succeeded").wait_for(timeout=20_000)
    assert GREETED == [("the host", 2)]
    assert outside_the_prefix(page) == []
    context.close()
