"""The example app (``examples/fastapi_app``) under ``uvicorn --workers 4`` on SQLite and on
PostgreSQL, and under ``--reload``: every scheduled time of every job runs once, as the app's
own table shows, through a worker's SIGKILL and a reload, and the app's API keeps answering."""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.example_app import AppServer, Tick, read_ticks
from tests.support.postgres import create_database, drop_database, require_postgres
from tests.support.server import wait_until

pytestmark = pytest.mark.e2e

JOBS = [f"tick-{i}" for i in range(10)]
SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Databases:
    kairos_url: str
    app_url: str


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """Brand-new databases, which the workers starting together create."""
    if request.param == "sqlite":
        yield Databases(f"sqlite:///{tmp_path}/kairos.db", f"sqlite:///{tmp_path}/app.db")
        return
    require_postgres()
    url = create_database()
    yield Databases(url, url)
    drop_database(url)


def test_four_workers_run_each_fire_once_through_a_sigkill_and_the_api_keeps_answering(
    databases: Databases, tmp_path: Path
) -> None:
    args = ("--workers", "4")
    with AppServer(databases.kairos_url, databases.app_url, tmp_path / "app.log", *args) as app:
        app.wait_for_nodes(4)
        with app.client() as api:
            for job in JOBS:
                answer = api.post("/tasks", json={"task_id": job, "every_seconds": 1})
                assert answer.status_code == 200, answer.text
            _bad_input_is_named(api)
        statuses: list[int] = []
        with _busy_api(app, statuses) as busy:
            ticks = functools.partial(read_ticks, databases.app_url)
            wait_until(lambda: _ran_in(ticks(), 2, seconds=3), 30, what="ticks in two workers")
            victim = max(app.workers() & {t.pid for t in ticks()})
            os.kill(victim, signal.SIGKILL)
            killed_at = datetime.now(UTC)
            horizon = killed_at + 4 * SECOND
            # On PostgreSQL the dead node's claimed fires wait out its lease (10 s).
            _wait_every_fire(databases.app_url, horizon, JOBS, 40)
        deleted_at = _delete(app, JOBS[0])
        wait_until(lambda: _ran_past(ticks(), JOBS[1:], deleted_at + 2 * SECOND), 20)

    rows = read_ticks(databases.app_url)
    assert _missing(rows, horizon) == []
    assert _twice(rows, victim) == []
    assert not [t for t in rows if t.job_id == JOBS[0] and t.scheduled_for > deleted_at + SECOND]
    after = {t.pid for t in rows if t.scheduled_for > horizon}
    assert after, "the others went on"
    assert victim not in after
    assert statuses, "the API was not called"
    assert set(statuses) == {200}, Counter(statuses)
    assert len(busy.resets) <= 1, busy.resets
    assert "database is locked" not in app.log()


def test_a_reload_does_not_run_a_fire_twice_nor_lose_one(tmp_path: Path) -> None:
    watched = tmp_path / "watched"
    watched.mkdir()
    (watched / "settings.py").write_text("VERSION = 1\n")
    databases = Databases(f"sqlite:///{tmp_path}/kairos.db", f"sqlite:///{tmp_path}/app.db")
    args = ("--reload", "--reload-dir", str(watched))
    with AppServer(databases.kairos_url, databases.app_url, tmp_path / "app.log", *args) as app:
        app.wait_for_nodes(1)
        with app.client() as api:
            for job in JOBS[:3]:
                answer = api.post("/tasks", json={"task_id": job, "every_seconds": 1})
                assert answer.status_code == 200, answer.text
        ticks = functools.partial(read_ticks, databases.app_url)
        wait_until(lambda: _ran_in(ticks(), 1, seconds=2), 30, what="ticks")
        (before,) = app.workers()
        (watched / "settings.py").write_text("VERSION = 2\n")
        wait_until(lambda: app.workers() - {before}, 30, what="the reloaded worker")
        wait_until(lambda: _ran_in(ticks(), 2, seconds=0), 30, what="ticks of the new worker")
        horizon = datetime.now(UTC) + 2 * SECOND
        _wait_every_fire(databases.app_url, horizon, JOBS[:3], 30)

    rows = read_ticks(databases.app_url)
    assert _missing(rows, horizon, JOBS[:3]) == []
    assert [key for key, n in Counter(_fires(rows)).items() if n > 1] == []


# What the table shows --------------------------------------------------------------------------


def _fires(rows: list[Tick]) -> list[tuple[str, datetime]]:
    return [(t.job_id, t.scheduled_for) for t in rows if t.job_id in JOBS]


def _ran_in(rows: list[Tick], workers: int, *, seconds: int) -> bool:
    """Every job has run for ``seconds`` after its first fire, in at least ``workers``
    processes."""
    by_job: dict[str, list[datetime]] = defaultdict(list)
    for job, at in _fires(rows):
        by_job[job].append(at)
    spans = [max(times) - min(times) >= seconds * SECOND for times in by_job.values()]
    return bool(spans) and all(spans) and len({t.pid for t in rows}) >= workers


def _ran_past(rows: list[Tick], jobs: list[str], moment: datetime) -> bool:
    return all(any(t.job_id == job and t.scheduled_for > moment for t in rows) for job in jobs)


def _missing(
    rows: list[Tick], horizon: datetime, jobs: list[str] = JOBS
) -> list[tuple[str, datetime | None]]:
    """The scheduled times with no row: each second of each job from its first row up to
    ``horizon``; (job, None) for a job with no row past ``horizon`` yet."""
    seen: dict[str, set[datetime]] = {job: set() for job in jobs}
    for job, at in _fires(rows):
        seen.get(job, set()).add(at)
    missing: list[tuple[str, datetime | None]] = []
    for job, times in seen.items():
        if not times or max(times) < horizon:
            missing.append((job, None))
            continue
        at = min(times)
        while at <= horizon:
            if at not in times:
                missing.append((job, at))
            at += SECOND
    return missing


def _wait_every_fire(app_url: str, horizon: datetime, jobs: list[str], timeout: float) -> None:
    """Wait until no scheduled time up to ``horizon`` lacks its row; on timeout, name them."""
    try:
        wait_until(lambda: not _missing(read_ticks(app_url), horizon, jobs), timeout)
    except AssertionError:
        missing = _missing(read_ticks(app_url), horizon, jobs)
        raise AssertionError(f"after {timeout} s, fires with no row: {missing[:20]}") from None


def _twice(rows: list[Tick], victim: int) -> list[list[Tick]]:
    """The fires that ran more than once, but for the one case Kairos documents: the killed
    worker ran the function and died before recording it, and another ran the next attempt."""
    by_fire: dict[tuple[str, datetime], list[Tick]] = defaultdict(list)
    for tick in rows:
        if tick.job_id in JOBS:
            by_fire[tick.job_id, tick.scheduled_for].append(tick)
    return [
        ticks
        for ticks in by_fire.values()
        if len(ticks) > 1
        and not _retried_after_kill(sorted(ticks, key=lambda t: t.attempt), victim)
    ]


def _retried_after_kill(ticks: list[Tick], victim: int) -> bool:
    first, *later = ticks
    return (
        len(later) == 1
        and first.pid == victim
        and later[0].pid != victim
        and later[0].attempt == first.attempt + 1
    )


# The app's API while the fires run -------------------------------------------------------------


class _busy_api:  # noqa: N801 (used as a context manager)
    """Create, replace and list the app's tasks in a loop, keeping every status answered."""

    def __init__(self, app: AppServer, statuses: list[int]) -> None:
        self._app = app
        self._statuses = statuses
        self._done = threading.Event()
        self.resets: list[httpx.TransportError] = []
        self._thread = threading.Thread(target=self._loop)

    def _loop(self) -> None:
        with self._app.client() as api:
            i = 0
            while not self._done.is_set():
                body = {"task_id": f"side-{i % 20}", "every_seconds": 3600}
                try:
                    self._statuses.append(api.post("/tasks", json=body).status_code)
                    self._statuses.append(api.get("/tasks").status_code)
                except httpx.TransportError as exc:
                    # The connection the killed worker was serving dies with it.
                    self.resets.append(exc)
                i += 1

    def __enter__(self) -> _busy_api:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def _bad_input_is_named(api: httpx.Client) -> None:
    """The app's own route answers bad input as a 422 naming the field of its body."""
    bad = {
        "crontab": {"crontab": "61 * * * *"},
        "params": {"every_seconds": 1, "params": {"note": 5}},
        "task": {"every_seconds": 1, "task": "nope"},
    }
    for field, body in bad.items():
        answer = api.post("/tasks", json={"task_id": "bad", **body})
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"][0]["loc"][:2] == ["body", field]
    lone = b'{"task_id": "bad", "every_seconds": 1, "params": {"note": "\\ud800"}}'
    answer = api.post("/tasks", content=lone, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "params", "note"]
    answer = api.get("/tasks", params={"cursor": "not-one-of-ours"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["query", "cursor"]


def _delete(app: AppServer, job: str) -> datetime:
    with app.client() as api:
        assert api.delete(f"/tasks/{job}").json() == {"status": "deleted"}
        assert api.delete(f"/tasks/{job}").status_code == 404
    return datetime.now(UTC)
