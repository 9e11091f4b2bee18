"""The web UI in a real headless Chromium against a real ``kairos serve`` and a real target:
sign in, create a job through the form, watch it fire, pause it, see the breaker's reason."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import PASSWORD, reload_until
from tests.support.server import ADMIN_TOKEN, KairosProcess, TargetProcess, wait_until

pytestmark = pytest.mark.browser


def test_sign_in_is_required_and_a_wrong_password_is_refused(
    browser: Any, server: KairosProcess
) -> None:
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.goto("/ui/runs")
    assert "/ui/login" in page.url
    page.get_by_label("User name").fill("ann")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    assert page.get_by_role("alert").inner_text() == "Incorrect user name or password"
    cookies = context.cookies()
    assert not [c for c in cookies if c["name"] == "kairos_session"]
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Runs").wait_for()  # back where it was going
    session = next(c for c in context.cookies() if c["name"] == "kairos_session")
    assert (session["httpOnly"], session["sameSite"], session["path"]) == (True, "Strict", "/ui")
    context.close()


def test_create_a_job_in_the_form_watch_it_fire_then_pause_it(
    signed_in: Any, target: TargetProcess
) -> None:
    page = signed_in
    page.get_by_role("link", name="New job").click()
    page.get_by_label("Id").fill("from-the-browser")
    page.get_by_label("Cron expression").fill("61 * * * *")
    page.locator("#preview").get_by_role("alert").wait_for()
    assert "expression" in page.locator("#preview").inner_text()
    page.get_by_label("Cron expression").fill("0 2 * * 0")
    page.locator("#preview").get_by_text("At 02:00 on Sunday").wait_for()
    page.get_by_label("Trigger", exact=True).select_option("interval")
    page.get_by_label("Every").fill("1")
    page.get_by_label("Unit").select_option("seconds")
    page.locator("#preview").get_by_text("Every 1 second").wait_for()
    page.get_by_label("URL").fill(target.url("/from-browser"))
    page.get_by_label("Tags").fill("browser, demo")
    page.get_by_role("button", name="Create job").click()
    page.get_by_role("heading", name="from-the-browser").wait_for()
    # A run's status badge, not the word: the chart's legend says "succeeded" from the first run.
    reload_until(page, ".badge.succeeded")
    assert target.deliveries("/from-browser")
    assert page.locator("svg.chart a.mark.succeeded").count() >= 1

    page.get_by_role("button", name="Pause", exact=True).click()
    page.locator(".badge.paused").first.wait_for()
    page.get_by_role("link", name="Jobs").click()
    row = page.locator("tr#job-from-the-browser")
    assert "paused" in row.inner_text()
    row.get_by_role("button", name="Resume from-the-browser").click()
    row.locator(".badge.scheduled").wait_for()  # swapped in place by htmx


def test_the_breakers_reason_shows_on_a_failing_job(
    signed_in: Any, server: KairosProcess, target: TargetProcess
) -> None:
    job = {
        "trigger": {"type": "interval", "seconds": 0.3},
        "target": {"url": target.url("/broken?status=500")},
        "max_consecutive_failures": 2,
    }
    with server.client() as api:
        assert api.put("/jobs/always-failing", json=job).status_code == 201
    page = signed_in
    page.goto("/ui/jobs/always-failing")
    reload_until(page, ".alert:has-text('Paused by the circuit breaker')")
    assert "after 2 failed fires in a row" in page.get_by_role("alert").inner_text()
    page.goto("/ui/jobs?state=tripped")
    assert page.locator("tr#job-always-failing").count() == 1


def test_the_jobs_list_filters_as_you_type_and_fits_a_phone(
    browser: Any, server: KairosProcess
) -> None:
    with server.client() as api:
        for job_id in ("phone-alpha", "phone-beta", "other"):
            body = {
                "trigger": {"type": "cron", "expression": "0 3 * * *"},
                "target": {"url": "http://127.0.0.1:9/"},
            }
            assert api.put(f"/jobs/{job_id}", json=body).status_code in (200, 201)
    context = browser.new_context(
        base_url=server.base_url, viewport={"width": 390, "height": 844}, color_scheme="dark"
    )
    context.add_cookies(
        [{"name": "kairos_session", "value": ADMIN_TOKEN, "url": f"{server.base_url}/ui"}]
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/ui/jobs")
    page.get_by_label("Search").fill("phone-")
    page.wait_for_function("() => !document.querySelector('tr#job-other')")
    assert page.locator("tbody tr").count() == 2
    assert "q=phone-" in page.url  # the filter is in the address, to share or reload
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 20, 24)"  # the dark palette
    context.close()


def test_a_viewer_without_the_scope_is_told_so(browser: Any, server: KairosProcess) -> None:
    with server.client() as api:
        key = api.post("/auth/keys", json={"name": "reader", "scopes": ["jobs:read"]}).json()
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.goto("/ui/login")
    page.get_by_text("Sign in with a token instead").click()
    page.get_by_label("Admin token or API key").fill(key["key"])
    page.get_by_role("button", name="Sign in with the token").click()
    page.get_by_role("heading", name="Jobs").wait_for()
    assert page.get_by_role("link", name="New job").count() == 0
    page.goto("/ui/audit")
    assert "'admin' scope" in page.get_by_role("alert").inner_text()
    context.close()


NEWEST_RUN_SHOWN = """() => Math.max(0, ...Array.from(
    document.querySelectorAll('#job-history tbody tr td:first-child'),
    (cell) => parseInt(cell.textContent, 10)))"""


def test_a_job_firing_every_second_updates_its_page_without_a_reload(
    signed_in: Any, server: KairosProcess, target: TargetProcess
) -> None:
    job = {"trigger": {"type": "interval", "seconds": 1}, "target": {"url": target.url("/live")}}
    with server.client() as api:
        assert api.put("/jobs/every-second", json=job).status_code == 201
        page = signed_in
        page.goto("/ui/jobs/every-second")
        page.evaluate("window.sameDocument = true")
        for _ in range(3):  # each time, the newest finished run is on the page within 2 s
            newest = 0

            def finished() -> bool:
                nonlocal newest
                runs = api.get("/runs", params={"job_id": "every-second"}).json()["items"]
                done = [run["id"] for run in runs if run["finished_at"] is not None]
                newest = max(done, default=0) if max(done, default=0) > newest else 0
                return newest > 0

            wait_until(finished, 10, what="a finished run")
            page.wait_for_function(f"() => ({NEWEST_RUN_SHOWN})() >= {newest}", timeout=2_000)
        assert page.evaluate("window.sameDocument") is True  # never reloaded
        assert page.locator("#job-history svg.chart a.mark.succeeded").count() >= 1
        api.delete("/jobs/every-second")


def test_live_updates_stop_while_the_tab_is_hidden(signed_in: Any) -> None:
    page = signed_in
    page.clock.install()
    page.goto("/ui/jobs")
    page.clock.pause_at(page.evaluate("Date.now()") + 500)  # from here, time moves when told
    with page.expect_request(lambda request: "/ui/jobs" in request.url):
        page.clock.run_for(2_100)  # the list asks every 2 s
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url))
    page.evaluate(SHOWN.format(state="hidden"))
    page.clock.run_for(10_000)  # five times it would have asked
    with page.expect_request(
        lambda request: "/ui/jobs" in request.url
    ):  # shown again: asks at once
        page.evaluate(SHOWN.format(state="visible"))
    assert len(polls) == 1  # only the one asked for on showing (request events come in order)


SHOWN = """() => {{
    Object.defineProperty(document, "visibilityState", {{value: "{state}", configurable: true}});
    document.dispatchEvent(new Event("visibilitychange"));
}}"""


def test_bulk_pause_of_a_tag(signed_in: Any, server: KairosProcess) -> None:
    daily = {
        "trigger": {"type": "cron", "expression": "0 3 * * *"},
        "target": {"url": "http://127.0.0.1:9/"},
    }
    with server.client() as api:
        for job_id in ("nightly-a", "nightly-b", "nightly-c", "hourly-x"):
            tags = ["nightly"] if job_id.startswith("nightly") else []
            assert api.put(f"/jobs/{job_id}", json=daily | {"tags": tags}).status_code == 201
        page = signed_in
        page.goto("/ui/jobs?tag=nightly")
        page.get_by_label("Select all jobs shown").check()
        # A change elsewhere reaches the list by itself, and the boxes ticked stay ticked.
        later = {"trigger": {"type": "cron", "expression": "0 4 * * *"}}
        assert api.patch("/jobs/nightly-b", json=later).status_code == 200
        page.locator("tr#job-nightly-b").get_by_text("04:00").wait_for(timeout=5_000)
        assert page.locator('tbody input[name="ids"]:checked').count() == 3
        questions: list[str] = []

        def answer(dialog: Any) -> None:
            questions.append(dialog.message)
            dialog.accept()

        page.on("dialog", answer)
        page.locator("form#bulk").get_by_role("button", name="Pause", exact=True).click()
        page.get_by_role("status").filter(has_text="Paused 3 jobs.").wait_for()
        assert questions == ["Pause the 3 jobs selected?"]
        assert "tag=nightly" in page.url
        assert page.locator("tbody tr .badge.paused").count() == 3
        jobs = {job["id"]: job["paused"] for job in api.get("/jobs").json()["items"]}
        assert [jobs[j] for j in ("nightly-a", "nightly-b", "nightly-c", "hourly-x")] == [
            True,
            True,
            True,
            False,
        ]
        for job_id in ("nightly-a", "nightly-b", "nightly-c"):
            audit = api.get("/audit", params={"target": job_id}).json()["items"]
            assert audit[0]["action"] == "job.pause"
