"""The jobs list an operator reads (last run, success rate, next run), the fragments the live
pages ask for again while visible, and bulk actions (scope, CSRF, bad input named, one audited
change per job). The browser tests drive the same in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.engine import Scheduler
from kairos.settings import Settings
from kairos.tasks import TaskRegistry
from kairos.web.render import relative
from tests.support.server import wait_until
from tests.unit.test_web import ADMIN, API, sign_in

DAILY = {"type": "cron", "expression": "0 3 * * *"}


def works() -> None:
    """A task that succeeds."""


def breaks() -> None:
    """A task that fails."""
    raise RuntimeError("broken on purpose")


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(database_url="memory://", admin_token=ADMIN)
    tasks = TaskRegistry()
    tasks.register("works", works)
    tasks.register("breaks", breaks)
    app = create_app(settings, scheduler=Scheduler.from_settings(settings, tasks=tasks))
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


def put(client: TestClient, job_id: str, task: str = "works", tags: tuple[str, ...] = ()) -> None:
    body = {"trigger": DAILY, "target": {"type": "python", "task": task}, "tags": list(tags)}
    assert client.put(f"/jobs/{job_id}", json=body, headers=API).status_code == 201


def run_and_wait(client: TestClient, job_id: str, times: int) -> None:
    """Run ``job_id`` now ``times`` times and wait until every run of it has finished."""
    before = len(client.get(f"/runs?job_id={job_id}", headers=API).json()["items"])
    for _ in range(times):
        assert client.post(f"/jobs/{job_id}/run", headers=API).status_code == 202

    def finished() -> bool:
        runs = client.get(f"/runs?job_id={job_id}", headers=API).json()["items"]
        done = [run for run in runs if run["finished_at"] is not None]
        return len(done) == len(runs) == before + times

    wait_until(finished, 10, what=f"{times} finished runs of {job_id}")


def htmx(target: str) -> dict[str, str]:
    return {"HX-Request": "true", "HX-Target": target}


@pytest.mark.parametrize(
    ("offset_s", "words"),
    [
        (9 * 3600 + 1799, "in 9 h"),
        (0.4, "now"),
        (59, "in 59 s"),
        (-61, "1 min ago"),
        (-3 * 86_400 - 5, "3 d ago"),
    ],
)
def test_relative_times_say_one_rounded_down_unit(offset_s: float, words: str) -> None:
    now_us = 1_800_000_000_000_000
    assert relative(now_us + int(offset_s * 1_000_000), now_us) == words


def test_the_list_shows_each_jobs_last_run_success_rate_and_next_run(client: TestClient) -> None:
    put(client, "mixed")
    put(client, "never-ran")
    run_and_wait(client, "mixed", 3)
    body = {"target": {"type": "python", "task": "breaks"}}
    assert client.patch("/jobs/mixed", json=body, headers=API).status_code == 200
    run_and_wait(client, "mixed", 1)
    sign_in(client)
    page = client.get("/ui/jobs").text
    mixed = re.search(r'<tr id="job-mixed">(.*?)</tr>', page, re.S)
    assert mixed is not None
    assert re.search(
        r'class="badge failed">failed</span>\s*<time [^>]*>(now|\d+ s ago)</time>', mixed[1]
    )
    assert '<span class="rate" title="3 of 4 calls succeeded (kept history)">75%</span>' in mixed[1]
    assert 'aria-label="3 of the last 4 calls succeeded"' in mixed[1]
    assert len(re.findall(r'<rect class="bar succeeded"', mixed[1])) == 3
    assert re.search(
        r'<time datetime="[^"]+" title="[^"]+" data-hover-local>in \d+ (h|min|s)</time>', mixed[1]
    )
    never = re.search(r'<tr id="job-never-ran">(.*?)</tr>', page, re.S)
    assert never is not None
    assert "never" in never[1]
    assert "rate" not in never[1]


def test_the_live_fragments_are_the_parts_that_change(client: TestClient) -> None:
    put(client, "busy", tags=("ops",))
    put(client, "other")
    run_and_wait(client, "busy", 1)
    sign_in(client)
    rows = client.get("/ui/jobs?tag=ops", headers=htmx("job-rows")).text
    assert rows.lstrip().startswith("<tr")
    assert 'id="job-busy"' in rows
    assert 'id="job-other"' not in rows
    assert "hx-preserve" in rows  # the ticked boxes survive each refresh
    page = client.get("/ui/jobs?tag=ops").text
    assert 'id="job-rows" data-live="2" hx-get="/ui/jobs?tag=ops"' in page

    history = client.get("/ui/jobs/busy", headers=htmx("job-history")).text
    assert "<html" not in history
    assert "<h1" not in history
    assert 'class="badge succeeded">succeeded' in history
    assert re.search(r'<span id="job-state" class="badge scheduled" hx-swap-oob="true">', history)
    assert (
        'id="job-history" data-live="1" hx-get="/ui/jobs/busy"' in client.get("/ui/jobs/busy").text
    )

    # A window of time reads more runs: asked for less often, and the range kept.
    windowed = client.get("/ui/jobs/busy?chart=7d").text
    assert 'id="job-history" data-live="5" hx-get="/ui/jobs/busy?chart=7d"' in windowed
    history = client.get("/ui/jobs/busy?chart=7d", headers=htmx("job-history")).text
    assert 'id="run-chart" data-range="7d"' in history

    runs = client.get("/ui/runs?job_id=busy", headers=htmx("run-list")).text
    assert "<html" not in runs
    assert ">busy</a>" in runs
    assert 'id="run-list" data-live="1"' in client.get("/ui/runs").text
    older = client.get("/ui/runs?cursor=1").text  # an older page is not refreshed
    assert 'id="run-list">' in older
    assert 'id="run-list" data-live="1"' not in older


def test_bulk_pause_changes_each_job_ticked_with_its_own_audit_record(client: TestClient) -> None:
    for job_id in ("batch.a", "batch.b", "solo"):
        put(client, job_id, tags=("batch",) if job_id.startswith("batch") else ())
    csrf = sign_in(client)
    answer = client.post(
        "/ui/jobs?tag=batch",
        data={"csrf_token": csrf, "action": "pause", "ids": ["batch.a", "batch.b", "gone"]},
    )
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/jobs?tag=batch&note=Paused+2+jobs.")
    back = client.get(answer.headers["location"]).text
    assert "Paused 2 jobs. Not found (deleted meanwhile?): gone." in back
    states = {j["id"]: j["paused"] for j in client.get("/jobs", headers=API).json()["items"]}
    assert states == {"batch.a": True, "batch.b": True, "solo": False}
    for job_id in ("batch.a", "batch.b"):
        audit = client.get(f"/audit?target={job_id}", headers=API).json()["items"]
        assert [(a["action"], a["actor"]) for a in audit][:1] == [("job.pause", "admin-token")]

    answer = client.post(
        "/ui/jobs", data={"csrf_token": csrf, "action": "run", "ids": ["batch.a", "solo"]}
    )
    assert "note=Queued+a+run+of+2+jobs." in answer.headers["location"]
    assert client.get("/runs?job_id=solo", headers=API).json()["items"]
    answer = client.post("/ui/jobs", data={"csrf_token": csrf, "action": "delete", "ids": "solo"})
    assert client.get("/jobs/solo", headers=API).status_code == 404


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"action": "explode", "ids": "solo"}, "action: one of pause, resume, run, delete."),
        ({"action": "pause"}, "ids: select at least one job."),
        ({"action": "pause", "ids": [f"j{n}" for n in range(101)]}, "ids: at most 100 jobs"),
    ],
)
def test_a_bad_bulk_request_names_the_field_and_changes_nothing(
    client: TestClient, fields: dict[str, object], named: str
) -> None:
    put(client, "solo")
    csrf = sign_in(client)
    answer = client.post("/ui/jobs", data={"csrf_token": csrf, **fields})
    assert answer.status_code == 400
    assert named in answer.text
    assert client.get("/jobs/solo", headers=API).json()["paused"] is False


def test_bulk_actions_need_jobs_write_and_the_csrf_token(client: TestClient) -> None:
    put(client, "solo")
    key = client.post("/auth/keys", json={"name": "r", "scopes": ["jobs:read"]}, headers=API)
    reader_csrf = sign_in(client, key.json()["key"])
    assert 'form="bulk"' not in client.get("/ui/jobs").text  # no boxes to tick
    fields = {"action": "pause", "ids": "solo"}
    refused = client.post("/ui/jobs", data={"csrf_token": reader_csrf, **fields})
    assert refused.status_code == 403
    assert "jobs:write" in refused.text
    sign_in(client)
    assert client.post("/ui/jobs", data=fields).status_code == 403
    assert client.post("/ui/jobs", data={"csrf_token": "forged", **fields}).status_code == 403
    assert client.get("/jobs/solo", headers=API).json()["paused"] is False
