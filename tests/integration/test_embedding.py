"""Kairos inside someone else's FastAPI app, served by a real uvicorn: the API under a prefix
with the app's own routes and lifespan around it, errors rendered without the app's help, the
app's own authentication, the mistakes an embedding can make, and the script form."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import ValidationError

from kairos import Kairos, RunContext
from kairos.api.schemas import JobOut, RunOut
from kairos.errors import InvalidField, JobNotFound, LifecycleError, NotStarted, StoreUnavailable
from kairos.identity import Principal, Scope
from kairos.settings import Settings
from tests.support.host import PREFIX, UI, host_app, serving
from tests.support.target import RecordingTarget

TOKEN = "an-admin-token-for-the-embedding-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def target() -> AsyncIterator[RecordingTarget]:
    async with RecordingTarget() as server:
        yield server


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/app.db"


def job(url: str, **extra: Any) -> dict[str, Any]:
    return {"trigger": {"type": "cron", "expression": "0 2 * * 0"}, "target": {"url": url}, **extra}


async def settled_run(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The job's newest run, once it has finished (within a deadline)."""
    async with asyncio.timeout(15):
        while True:
            runs = (await api.get(f"{PREFIX}/jobs/{job_id}/runs")).json()["items"]
            if runs and runs[0]["finished_at"] is not None:
                return dict(runs[0])
            await asyncio.sleep(0.05)


async def test_a_jobs_whole_life_under_the_hosts_prefix(
    db: str, target: RecordingTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIROS_ADMIN_TOKEN", TOKEN)  # read from the environment, as documented
    events: list[str] = []
    kairos = Kairos(db)
    async with (
        serving(host_app(kairos, events=events)) as base,
        httpx.AsyncClient(base_url=base, headers=BEARER) as api,
    ):
        assert events == ["host starting", "kairos running"]
        assert (await api.get("/hello")).json() == {"hello": "from the host"}

        created = await api.put(f"{PREFIX}/jobs/nightly", json=job(target.url("/nightly")))
        assert created.status_code == 201, created.text
        assert (
            await api.put(f"{PREFIX}/jobs/nightly", json=job(target.url("/nightly")))
        ).status_code == 200
        assert (await api.get(f"{PREFIX}/jobs/nightly")).json()["next_run_time"] is not None
        listed = (await api.get(f"{PREFIX}/jobs")).json()
        assert [item["id"] for item in listed["items"]] == ["nightly"]

        paused = (await api.post(f"{PREFIX}/jobs/nightly/pause")).json()
        assert (paused["paused"], paused["next_run_time"]) == (True, None)
        resumed = (await api.post(f"{PREFIX}/jobs/nightly/resume")).json()
        assert (resumed["paused"], resumed["next_run_time"] is not None) == (False, True)

        assert (await api.post(f"{PREFIX}/jobs/nightly/run")).status_code == 202
        await target.wait_for(1)
        assert (await settled_run(api, "nightly"))["status"] == "succeeded"

        assert (await api.delete(f"{PREFIX}/jobs/nightly")).status_code == 204
        gone = await api.get(f"{PREFIX}/jobs/nightly")
        assert (gone.status_code, gone.headers["content-type"]) == (404, "application/json")
        assert "nightly" in gone.json()["detail"]

        seeded = await api.post(
            f"{PREFIX}/tasks",
            json={"task_id": "seed", "crontab": "0 3 * * *", "target_endpoint": target.url("/s")},
        )
        assert seeded.json()["job_id"] == "seed"
        assert (await api.get(f"{PREFIX}/healthz")).status_code == 200
        assert (await api.get(f"{PREFIX}/readyz")).json()["status"] == "ready"
        assert "kairos_" in (await api.get(f"{PREFIX}/metrics")).text
        # Kairos's routes are not at the host's root, and the host's own 404 stays its own.
        assert (await api.get("/jobs")).status_code == 404
        paths = (await api.get("/openapi.json")).json()["paths"]
        assert {"/hello", f"{PREFIX}/jobs/{{job_id}}", f"{PREFIX}/tasks"} <= paths.keys()
    assert events[-1] == "kairos stopped"
    with pytest.raises(NotStarted):
        kairos.scheduler  # noqa: B018  (the property is the check)


async def test_errors_are_rendered_without_the_hosts_handlers(db: str) -> None:
    kairos = Kairos(settings=Settings(database_url=db, admin_token=TOKEN))
    async with (
        serving(host_app(kairos)) as base,
        httpx.AsyncClient(base_url=base, headers=BEARER) as api,
    ):
        missing = await api.post(f"{PREFIX}/jobs/nobody/pause")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Job 'nobody' not found"}

        bad = await api.put(
            f"{PREFIX}/jobs/bad", json={"trigger": {"type": "cron"}, "target": {"url": 5}}
        )
        assert bad.status_code == 422
        assert any(error["loc"][:2] == ["body", "target"] for error in bad.json()["detail"])

        not_a_number = await api.put(
            f"{PREFIX}/jobs/nan",
            content=b'{"trigger": {"type": "interval", "seconds": NaN}, "target": {"url": "http://x"}}',
            headers={"content-type": "application/json"},
        )
        assert not_a_number.status_code == 422
        assert "seconds" in not_a_number.text

        not_text = await api.put(
            f"{PREFIX}/jobs/surrogate",
            content=b'{"trigger": {"type": "cron", "expression": "0 2 * * 0"}, '
            b'"target": {"url": "http://x"}, "description": "a\\ud800"}',
            headers={"content-type": "application/json"},
        )
        assert not_text.status_code == 422
        assert not_text.json()["detail"][0]["loc"] == ["body", "description"]

        anonymous = await api.get(f"{PREFIX}/jobs", headers={"Authorization": ""})
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")


async def test_before_start_the_router_and_ui_answer_503(db: str) -> None:
    kairos = Kairos(settings=Settings(database_url=db, admin_token=TOKEN))
    app = FastAPI()  # a host that forgot the lifespan
    app.include_router(kairos.router(), prefix=PREFIX)
    app.mount(UI, kairos.ui())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
        api = await client.get(f"{PREFIX}/jobs", headers=BEARER)
        assert api.status_code == 503
        assert "kairos.lifespan" in api.json()["detail"]
        ui = await client.get(f"{UI}/login")
        assert ui.status_code == 503


async def test_starting_twice_is_a_clear_error_and_leaves_it_running(db: str) -> None:
    async with Kairos(settings=Settings(database_url=db, admin_token=TOKEN)) as kairos:
        with pytest.raises(LifecycleError, match="already started"):
            await kairos.start()
        assert (await kairos.put_job("still-works", job("http://127.0.0.1:9/"))).id == "still-works"
    with pytest.raises(NotStarted):
        await kairos.get_job("still-works")


async def test_a_failed_start_leaves_it_stopped_and_startable(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file-where-a-directory-should-be"
    in_the_way.write_text("")
    url = f"sqlite:///{in_the_way}/k.db"
    kairos = Kairos(settings=Settings(database_url=url, admin_token=TOKEN))
    with pytest.raises(StoreUnavailable, match="cannot create the directory"):
        await kairos.start()
    with pytest.raises(NotStarted):
        kairos.scheduler  # noqa: B018
    in_the_way.unlink()
    in_the_way.mkdir()
    async with kairos:  # not "already started": the failed start left nothing behind
        assert (await kairos.list_jobs()).items == []


def test_asking_for_a_second_router_is_a_clear_error(db: str) -> None:
    kairos = Kairos(db)
    kairos.router()
    with pytest.raises(LifecycleError, match=r"router\(\) was already called.*twice"):
        kairos.router()
    with pytest.raises(LifecycleError, match=r"router\(\) was already called"):
        kairos.routers()  # the same routes, one router per resource


def test_a_url_and_settings_together_are_refused(db: str) -> None:
    with pytest.raises(ValueError, match="database_url or settings"):
        Kairos(db, settings=Settings(database_url=db))


def _host_user(request: Request) -> Principal | None:
    """The host's own sign-in, reduced to a header: who, and what Kairos lets them do."""
    grants = {
        "alice": {Scope.JOBS_READ, Scope.JOBS_WRITE},
        "bob": {Scope.JOBS_READ},
        "carol": {Scope.ADMIN},
    }
    user = request.headers.get("x-user", "")
    return Principal(f"host:{user}", frozenset(grants[user])) if user in grants else None


async def test_the_hosts_own_auth_dependency_grants_scopes_and_names_the_actor(db: str) -> None:
    kairos = Kairos(settings=Settings(database_url=db, admin_token=TOKEN))
    spec = job("http://127.0.0.1:9/")
    async with (
        serving(host_app(kairos, auth=_host_user)) as base,
        httpx.AsyncClient(base_url=base) as api,
    ):
        as_alice = await api.put(f"{PREFIX}/jobs/hosted", json=spec, headers={"x-user": "alice"})
        assert as_alice.status_code == 201, as_alice.text
        # bob may read, not write, whichever way the request comes (the fast path included).
        assert (
            await api.get(f"{PREFIX}/jobs/hosted", headers={"x-user": "bob"})
        ).status_code == 200
        as_bob = await api.put(
            f"{PREFIX}/jobs/hosted", json=spec, headers={"x-user": "bob", **BEARER}
        )
        assert as_bob.status_code == 403
        assert "jobs:write" in as_bob.json()["detail"]
        # The host decides who calls: Kairos's own tokens open nothing here.
        assert (await api.get(f"{PREFIX}/jobs", headers=BEARER)).status_code == 401
        assert (await api.get(f"{PREFIX}/jobs")).status_code == 401
        assert (await api.get(f"{PREFIX}/healthz")).status_code == 200  # probes stay open
        me = await api.get(f"{PREFIX}/auth/me", headers={"x-user": "alice"})
        assert me.json()["name"] == "host:alice"

        audit = await api.get(f"{PREFIX}/audit", headers={"x-user": "carol"})
        assert audit.status_code == 200, audit.text
        actors = {(r["action"], r["actor"]) for r in audit.json()["items"]}
        assert ("job.create", "host:alice") in actors


async def test_the_script_form_takes_and_answers_the_apis_models(
    db: str, target: RecordingTarget
) -> None:
    async with Kairos(settings=Settings(database_url=db, admin_token=TOKEN)) as kairos:
        created = await kairos.put_job("report", job(target.url("/report")))
        assert isinstance(created, JobOut)
        assert created.next_run_time is not None
        assert (await kairos.get_job("report")) == created
        assert [j.id for j in (await kairos.list_jobs(prefix="rep")).items] == ["report"]
        assert (await kairos.pause("report")).paused is True
        assert (await kairos.resume("report", actor="nightly-script")).paused is False
        run = await kairos.run_now("report")
        assert isinstance(run, RunOut)
        await target.wait_for(1)
        page = await kairos.runs(job_id="report")
        assert [r.id for r in page.items] == [run.id]
        await kairos.delete("report")
        with pytest.raises(JobNotFound):
            await kairos.get_job("report")
        audit = await kairos.scheduler.audit_page(target="report", actor=None, cursor=None, limit=9)
        actors = {record.actor for record in audit.items}
        assert actors == {"system", "nightly-script"}


async def test_a_bad_job_id_in_the_script_form_names_the_field(db: str) -> None:
    async with Kairos(settings=Settings(database_url=db, admin_token=TOKEN)) as kairos:
        with pytest.raises(InvalidField) as raised:
            await kairos.put_job("no spaces", job("http://127.0.0.1:9/"))
        assert raised.value.loc == ("job_id",)


async def test_arguments_that_are_no_text_in_the_script_form_are_named_not_stored(
    db: str,
) -> None:
    kairos = Kairos(settings=Settings(database_url=db, admin_token=TOKEN))

    @kairos.task()
    def note(text: str) -> None: ...

    target = {"type": "python", "task": "note", "kwargs": {"text": "\ud800"}}
    async with kairos:
        with pytest.raises(ValidationError) as raised:
            await kairos.put_job("lone", {**job("http://127.0.0.1:9/"), "target": target})
        assert [e["loc"] for e in raised.value.errors()] == [("target", "kwargs", "text")]
        with pytest.raises(JobNotFound):
            await kairos.get_job("lone")


async def test_a_generated_admin_token_is_logged_once(
    db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("KAIROS_ADMIN_TOKEN", raising=False)
    with caplog.at_level(logging.WARNING, logger="kairos"):
        async with Kairos(db) as kairos:
            said = [r.getMessage() for r in caplog.records if r.name == "kairos"]
            assert len(said) == 1
            found = re.search(r"stored hashed\): (\S+)\.", said[0])
            assert found is not None
            token = found[1]
            app = FastAPI()
            app.include_router(kairos.router())
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://h") as client:
                headers = {"Authorization": f"Bearer {token}"}
                assert (await client.get("/auth/me", headers=headers)).json()["name"]
        caplog.clear()
        async with Kairos(db):
            assert not [r for r in caplog.records if r.name == "kairos"]


@pytest.mark.parametrize(
    ("asked", "sent_to"),
    [
        (f"{UI}/runs?status=failed", f"{UI}/runs?status=failed"),
        ("/ui/jobs", f"{UI}/"),  # kairos serve's UI path is not this one's: this UI's root
        ("https://elsewhere.example/", f"{UI}/"),
    ],
)
async def test_signing_in_under_a_prefix_goes_only_to_that_ui(
    db: str, asked: str, sent_to: str
) -> None:
    async with Kairos(settings=Settings(database_url=db, admin_token=TOKEN)) as kairos:
        app = FastAPI()
        app.mount(UI, kairos.ui())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
            signed_in = await client.post(f"{UI}/login", data={"token": TOKEN, "next": asked})
            assert signed_in.status_code == 303
            assert signed_in.headers["location"] == sent_to
            assert f"Path={UI};" in signed_in.headers["set-cookie"]
            home = await client.get(f"{UI}/")
            assert home.headers["location"] == f"{UI}/overview"


async def test_the_hosts_own_functions_run_as_python_tasks_put_through_the_router(
    db: str,
) -> None:
    kairos = Kairos(settings=Settings(database_url=db, admin_token=TOKEN))
    crawled: list[tuple[str, int, str, int]] = []

    @kairos.task("crawl")
    async def crawl(url: str, ctx: RunContext, depth: int = 1) -> dict[str, int]:
        crawled.append((url, depth, ctx.job_id, ctx.attempt))
        return {"pages": depth * 10}

    soon = datetime.now(UTC) + timedelta(seconds=0.3)
    target = {"type": "python", "task": "crawl", "args": ["example.com"], "kwargs": {"depth": "3"}}
    body = {"trigger": {"type": "date", "run_date": soon.isoformat()}, "target": target}
    async with (
        serving(host_app(kairos)) as base,
        httpx.AsyncClient(base_url=base, headers=BEARER) as api,
    ):
        assert (await api.put(f"{PREFIX}/jobs/crawl-once", json=body)).status_code == 201
        run = await settled_run(api, "crawl-once")
        assert (run["status"], run["response_excerpt"]) == ("succeeded", '{"pages":30}')
        assert crawled == [("example.com", 3, "crawl-once", 1)]
        wrong = {**body, "target": {**target, "kwargs": {"depth": "deep"}}}
        answer = await api.put(f"{PREFIX}/jobs/bad", json=wrong)
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"] == ["body", "target", "kwargs", "depth"]
        unknown = {**body, "target": {**target, "task": "crawl2"}}
        answer = await api.put(f"{PREFIX}/jobs/bad", json=unknown)
        assert answer.status_code == 422
        assert answer.json()["detail"][0]["loc"] == ["body", "target", "task"]
        assert (await api.get(f"{PREFIX}/jobs/crawl-once")).json()["waiting_for_task"] is None
