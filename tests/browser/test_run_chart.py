"""A job's run chart in a real headless Chromium against a real ``kairos serve``: runs placed by
when they started and how long they took, their details on hover, the range chosen, the cap on
what a window of time reads, and the chart kept up to date by the page's live refresh.

The runs are written into the server's SQLite file as ``kairos db copy`` writes them (the
store's ``import_runs``), at the times each test needs; the jobs' schedules never fire."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from kairos.models import RunRecord, RunStatus
from kairos.store import store_for_url
from tests.support.server import KairosProcess

pytestmark = pytest.mark.browser

S = 1_000_000
NEVER = {
    "trigger": {"type": "cron", "expression": "0 3 1 1 *"},
    "target": {"url": "http://127.0.0.1:9/"},
}


def now_us() -> int:
    return time.time_ns() // 1000


def run(job_id: str, at_us: int, status: RunStatus, ms: int | None) -> RunRecord:
    """A finished run of ``job_id`` that started at ``at_us`` and took ``ms`` (None: no call)."""
    if ms is None:
        return RunRecord(0, job_id, at_us, 1, status, finished_us=at_us)
    return RunRecord(0, job_id, at_us, 1, status, started_us=at_us, finished_us=at_us + ms * 1000)


def seed(server: KairosProcess, job_id: str, runs: list[RunRecord]) -> list[int]:
    """Make ``job_id`` (unless it is there) and add ``runs`` to it; their ids, in order."""
    with server.client() as api:
        if api.get(f"/jobs/{job_id}").status_code == 404:
            assert api.put(f"/jobs/{job_id}", json=NEVER).status_code == 201

    async def add() -> list[int]:
        store = store_for_url(server.db_url)
        await store.open()
        try:
            await store.import_runs(runs)
            listed = await store.list_runs(
                job_id=job_id, status=None, before_id=None, limit=len(runs)
            )
        finally:
            await store.close()
        return [r.id for r in reversed(listed)]

    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this one
        return thread.submit(asyncio.run, add()).result()


def centre(page: Any, run_id: int) -> tuple[float, float]:
    box = page.locator(f'a.mark[data-run="{run_id}"]').bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def test_runs_are_placed_by_when_they_started_and_how_long_they_took(
    signed_in: Any, server: KairosProcess
) -> None:
    t0 = now_us() - 3 * 3600 * S
    first, second, later = seed(
        server,
        "placed",
        [
            run("placed", t0, RunStatus.SUCCEEDED, 200),
            run("placed", t0 + S, RunStatus.FAILED, 800),
            run("placed", t0 + 3600 * S, RunStatus.SUCCEEDED, 100),
        ],
    )
    page = signed_in
    page.goto("/ui/jobs/placed")
    plot = page.locator("svg.chart svg.plot").bounding_box()
    assert plot is not None
    (x1, y1), (x2, y2), (x3, y3) = (centre(page, i) for i in (first, second, later))
    assert abs(x2 - x1) < 3  # a second apart: side by side
    assert x3 - x1 > 0.8 * plot["width"]  # an hour apart, the whole chart's span: far apart
    assert y2 < y1 < y3  # up the chart: 800 ms, then 200 ms, then 100 ms
    # Colour is not the only cue: each outcome has its own shape, and the legend names them.
    assert page.locator(f'a.mark[data-run="{second}"] use').get_attribute("href") == (
        "#mark-failed"
    )
    legend = page.locator("ul.legend").inner_text()
    assert "succeeded 2" in legend
    assert "failed 1" in legend
    summary = page.locator("#chart-summary").inner_text()
    assert "The last 3 finished runs" in summary
    assert "2 succeeded, 1 failed" in summary


def test_hovering_a_run_shows_its_details_and_links_to_it(
    signed_in: Any, server: KairosProcess
) -> None:
    t0 = now_us() - 600 * S
    (slow,) = seed(server, "hovered", [run("hovered", t0, RunStatus.FAILED, 1500)])
    page = signed_in
    page.goto("/ui/jobs/hovered")
    tip = page.locator(".chart-tip")
    assert tip.is_hidden()
    page.locator(f'a.mark[data-run="{slow}"]').hover()
    tip.wait_for(state="visible")
    shown = tip.inner_text()
    assert f"Run {slow} · failed" in shown
    assert "Took 1.5 s" in shown
    assert "Attempt 1" in shown
    started = page.evaluate(f"new Date({t0 // 1000}).toLocaleString()")
    assert started in shown  # the start, in the viewer's zone
    page.mouse.move(0, 0)
    tip.wait_for(state="hidden")
    page.locator(f'a.mark[data-run="{slow}"]').focus()  # by keyboard too
    tip.wait_for(state="visible")
    tip.get_by_role("link", name=f"Open run {slow}").click()
    page.get_by_role("heading", name=f"Run {slow}").wait_for()


def test_the_range_chosen_changes_the_runs_drawn(signed_in: Any, server: KairosProcess) -> None:
    now = now_us()
    old, recent, missed = seed(
        server,
        "ranged",
        [
            run("ranged", now - 3 * 86_400 * S, RunStatus.SUCCEEDED, 300),
            run("ranged", now - 2 * 3600 * S, RunStatus.FAILED, 50),
            run("ranged", now - 300 * S, RunStatus.MISSED, None),
        ],
    )
    page = signed_in
    page.goto("/ui/jobs/ranged")

    def drawn() -> set[int]:
        runs = page.locator("a.mark").evaluate_all("els => els.map(e => e.dataset.run)")
        return {int(r) for r in runs}

    assert drawn() == {old, recent, missed}
    assert page.get_by_role("link", name="Last 50 runs").get_attribute("aria-current") == "true"
    page.get_by_role("link", name="24 h", exact=True).click()
    page.wait_for_url("**/ui/jobs/ranged?chart=24h")
    assert drawn() == {recent, missed}
    assert (
        "2 runs in the last 24 h: 1 failed, 1 missed" in page.locator("#chart-summary").inner_text()
    )
    # A fire that made no call sits on the baseline.
    base_y = page.locator("svg.plot line.axis").bounding_box()
    assert base_y is not None
    assert abs(centre(page, missed)[1] - base_y["y"]) < 2
    page.get_by_role("link", name="7 days", exact=True).click()
    page.wait_for_url("**/ui/jobs/ranged?chart=7d")
    assert drawn() == {old, recent, missed}
    response = page.goto("/ui/jobs/ranged?chart=1y")
    assert response is not None
    assert response.status == 422
    assert "chart: one of 50, 24h, 7d" in page.locator("main").inner_text()


def test_a_window_reads_at_most_2000_runs_and_says_so(
    signed_in: Any, server: KairosProcess
) -> None:
    now = now_us()
    seed(
        server,
        "busy",
        [run("busy", now - (2100 - i) * 30 * S, RunStatus.SUCCEEDED, 5) for i in range(2100)],
    )
    page = signed_in
    page.goto("/ui/jobs/busy?chart=24h")
    assert page.locator("a.mark").count() == 2000
    note = page.get_by_role("note").inner_text()
    assert "Only the newest 2,000 runs of the last 24 h" in note
    page.goto("/ui/jobs/busy?chart=50")
    assert page.locator("a.mark").count() == 50
    assert page.get_by_role("note").count() == 0


def test_the_live_refresh_adds_new_runs_to_the_chart_and_keeps_the_range(
    signed_in: Any, server: KairosProcess
) -> None:
    now = now_us()
    (first,) = seed(server, "growing", [run("growing", now - 3600 * S, RunStatus.SUCCEEDED, 40)])
    page = signed_in
    page.goto("/ui/jobs/growing?chart=24h")
    page.evaluate("window.sameDocument = true")
    page.locator(f'a.mark[data-run="{first}"]').hover()
    page.locator(".chart-tip").wait_for(state="visible")
    (second,) = seed(server, "growing", [run("growing", now_us(), RunStatus.INTERRUPTED, 70)])
    page.locator(f'a.mark[data-run="{second}"]').wait_for(timeout=12_000)
    assert page.evaluate("window.sameDocument") is True  # swapped in, not reloaded
    assert page.locator("#run-chart").get_attribute("data-range") == "24h"
    assert page.locator(".chart-tip").is_visible()  # still shown, on the new drawing
    page.locator(f'a.mark[data-run="{second}"]').hover()
    assert "Run " + str(second) + " · interrupted" in page.locator(".chart-tip").inner_text()
