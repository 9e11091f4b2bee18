"""The overview page, where the UI lands: its figures are those of ``GET /overview``, each
linking to the list behind it; it is live; it needs runs:read and jobs:read, and a viewer
without them lands elsewhere. Also the jobs list's success rate over the kept history. The
browser tests drive the same in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.engine import Scheduler
from kairos.settings import Settings
from kairos.tasks import TaskRegistry
from tests.support.server import wait_until
from tests.unit.test_web import ADMIN, API, sign_in
from tests.unit.test_web_live import breaks, htmx, put, run_and_wait, works

ENDED = ("succeeded", "failed", "missed", "skipped", "interrupted", "cancelled")


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(database_url="memory://", admin_token=ADMIN)
    tasks = TaskRegistry()
    tasks.register("works", works)
    tasks.register("breaks", breaks)
    app = create_app(settings, scheduler=Scheduler.from_settings(settings, tasks=tasks))
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def figure(page: str, element_id: str) -> tuple[int, str]:
    """The count a table cell's link ``element_id`` shows, and where it leads."""
    found = re.search(rf'<a id="{element_id}" href="([^"]+)"[^>]*>(\d+)<', page)
    assert found is not None, element_id
    return int(found[2]), found[1]


def stat(page: str, element_id: str) -> tuple[int, str]:
    """The figure a tile's link ``element_id`` shows, and where it leads."""
    pattern = rf'<a id="{element_id}" class="[^"]*" href="([^"]+)"><span class="value">(\d+)<'
    found = re.search(pattern, page)
    assert found is not None, element_id
    return int(found[2]), found[1]


def key(client: TestClient, *scopes: str) -> str:
    made = client.post("/auth/keys", json={"name": "k", "scopes": list(scopes)}, headers=API)
    return str(made.json()["key"])


def test_the_overview_shows_the_figures_of_the_api_each_linking_to_its_list(
    client: TestClient,
) -> None:
    put(client, "good")
    put(client, "bad", task="breaks")
    run_and_wait(client, "good", 2)
    run_and_wait(client, "bad", 1)
    sign_in(client)
    page = client.get("/ui/overview").text
    api: dict[str, Any] = client.get("/overview", headers=API).json()
    for status in ENDED:
        hour = figure(page, f"ov-hour-{status}")
        day = figure(page, f"ov-day-{status}")
        assert hour == (api["ended_last_hour"][status], f"/ui/runs?status={status}")
        assert day == (api["ended_last_24h"][status], f"/ui/runs?status={status}")
    assert (api["ended_last_hour"]["succeeded"], api["ended_last_hour"]["failed"]) == (2, 1)
    assert stat(page, "ov-running") == (api["running"], "/ui/runs?status=running")
    assert stat(page, "ov-queued") == (api["queued"], "/ui/runs?status=scheduled")
    assert stat(page, "ov-tripped") == (0, "/ui/jobs?state=tripped")
    assert re.search(r'<span class="value">1</span> <span class="label">failing job<', page)
    assert '<a id="ov-failing-1" class="mono" href="/ui/jobs/bad">bad</a>' in page
    fires = re.findall(r'<a id="ov-next-\d+" href="/ui/jobs/([^"]+)">', page)
    assert fires == [fire["job_id"] for fire in api["next_fires"]] == ["bad", "good"]
    assert re.search(r"data-hover-local>in \d+ (h|min|s)</time>", page)
    assert "newest first" in page
    assert stat(page, "ov-nodes") == (len(api["nodes"]), "/ui/cluster")  # admin: a link

    # What a link leads to starts with what it counted.
    failed = client.get("/ui/runs?status=failed").text
    assert re.findall(r'class="badge (\w+)">', failed)[:1] == ["failed"]


def test_the_overview_is_live_and_lands_first(client: TestClient) -> None:
    sign_in(client)
    assert client.get("/ui/").headers["location"] == "/ui/overview"
    assert client.get("/ui").headers["location"] == "/ui/"
    page = client.get("/ui/overview").text
    assert 'id="overview" data-live="2" hx-get="/ui/overview"' in page
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', page, re.S)
    assert nav is not None
    assert re.findall(r">([^<]+)</a>", nav[1])[:2] == ["Overview", "Jobs"]
    assert 'href="/ui/overview" aria-current="page"' in nav[1]
    fragment = client.get("/ui/overview", headers=htmx("overview")).text
    assert "<html" not in fragment
    assert "<h1" not in fragment
    assert 'id="ov-hour-succeeded"' in fragment
    signed = client.post("/ui/login", data={"token": ADMIN})  # no page asked for: the root
    assert signed.headers["location"] == "/ui/"


def test_a_viewer_without_runs_read_or_jobs_read_is_refused_and_lands_elsewhere(
    client: TestClient,
) -> None:
    for scopes, lands, missing in (
        (("jobs:read",), "/ui/jobs", "runs:read"),
        (("runs:read",), "/ui/runs", "jobs:read"),
    ):
        sign_in(client, key(client, *scopes))
        assert client.get("/ui/").headers["location"] == lands
        refused = client.get("/ui/overview")
        assert refused.status_code == 403
        assert f"&#39;{missing}&#39; scope" in refused.text
        nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', refused.text, re.S)
        assert nav is not None
        assert "Overview" not in nav[1]
        assert re.findall(r">([^<]+)</a>", nav[1]) == ["Jobs" if lands == "/ui/jobs" else "Runs"]
    sign_in(client, key(client, "runs:read", "jobs:read"))
    page = client.get("/ui/overview").text
    assert 'id="ov-nodes"' not in page  # the cluster page needs admin: no link to it
    assert "/ui/cluster" not in page


def test_tripped_jobs_are_named_and_counted_with_a_link_to_the_list(client: TestClient) -> None:
    body = {
        "trigger": {"type": "interval", "seconds": 0.1},
        "target": {"type": "python", "task": "breaks"},
        "max_consecutive_failures": 1,
    }
    assert client.put("/jobs/fragile", json=body, headers=API).status_code == 201

    def tripped() -> bool:
        return bool(client.get("/jobs/fragile", headers=API).json()["state"] == "tripped")

    wait_until(tripped, 10, what="the breaker to trip")
    sign_in(client)
    page = client.get("/ui/overview").text
    assert stat(page, "ov-tripped") == (1, "/ui/jobs?state=tripped")
    assert '<a id="ov-tripped-1" class="mono" href="/ui/jobs/fragile">fragile</a>' in page
    listed = client.get("/ui/jobs?state=tripped").text
    assert 'id="job-fragile"' in listed


def test_the_jobs_list_rate_is_over_the_kept_history_and_its_bars_the_newest_calls(
    client: TestClient,
) -> None:
    put(client, "mended", task="breaks")
    run_and_wait(client, "mended", 5)
    body = {"target": {"type": "python", "task": "works"}}
    assert client.patch("/jobs/mended", json=body, headers=API).status_code == 200
    run_and_wait(client, "mended", 20)
    sign_in(client)
    page = client.get("/ui/jobs").text
    row = re.search(r'<tr id="job-mended">(.*?)</tr>', page, re.S)
    assert row is not None
    # 20 of 25 calls kept succeeded; the newest 20 all did.
    assert '<span class="rate" title="20 of 25 calls succeeded (kept history)">80%</span>' in row[1]
    assert 'aria-label="20 of the last 20 calls succeeded"' in row[1]
    assert """title="Calls that succeeded, over the job's kept history""" in page
