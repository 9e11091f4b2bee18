"""``kairos db copy`` as an operator runs it: an installation on SQLite moved to PostgreSQL and
from there to Redis, every record checked equal on the other side, a server started on each
destination firing the jobs and taking the tokens, passwords and keys of before; and the
refusals (a destination in use, a missing source file, nodes running on the source)."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from kairos import Kairos
from kairos.auth.tokens import SIGNING_KEY_META
from kairos.identity import AuditRecord
from kairos.models import RunRecord
from kairos.settings import Settings
from kairos.store import JobQuery, store_for_url
from kairos.tasks import RunContext
from tests.support.fakes import eventually
from tests.support.host import PREFIX, host_app, serving
from tests.support.redis import redis_store_url
from tests.support.target import RecordingTarget

pytestmark = pytest.mark.e2e

R = TypeVar("R", RunRecord, AuditRecord)

ADMIN = "admin-token-of-the-copy-tests-0123456789"
SECRETS_KEY = "secrets-key-of-the-copy-tests-0123456789"
SECRET_VALUE = "crawler-secret-4711"
PASSWORD = "a long enough password"
TALLIES: list[int] = []
"""When the python task ran (epoch microseconds), on any server of these tests."""


def kairos_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kairos", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def kairos_on(url: str) -> Kairos:
    settings = Settings(database_url=url, admin_token=ADMIN, secrets_key=SECRETS_KEY)
    kairos = Kairos(settings=settings)

    @kairos.task("tally")
    def tally(ctx: RunContext) -> None:
        TALLIES.append(time.time_ns() // 1000)

    return kairos


def jobs(target: RecordingTarget) -> dict[str, dict[str, Any]]:
    every_second = {"type": "interval", "seconds": 1}
    return {
        "ping": {
            "trigger": every_second,
            "target": {
                "url": target.url("/ping"),
                "headers": {"Authorization": "Bearer ${secret:crawler}"},
            },
            "on_failure": {"url": target.url("/hook"), "secret": "a literal webhook secret"},
            "tags": ["copied", "http"],
        },
        "tally": {"trigger": every_second, "target": {"type": "python", "task": "tally"}},
        "flaky": {
            "trigger": every_second,
            "target": {"url": target.url("/fail?status=500")},
            "max_consecutive_failures": 1,
        },
        "nightly": {
            "trigger": {"type": "cron", "expression": "0 2 * * *"},
            "timezone": "Europe/Berlin",
            "target": {"url": target.url("/nightly")},
            "paused": True,
            "tags": ["copied"],
        },
    }


async def populate(url: str, target: RecordingTarget) -> tuple[str, str]:
    """Fill the store at ``url`` as a team would, running a server on it a while; return a
    user's access token and an API key."""
    db = ["--db", url]
    added = kairos_cli("users", "add", "ann", "--password-stdin", *db, stdin="first password")
    assert added.returncode == 0, added.stderr
    changed = kairos_cli("users", "passwd", "ann", "--password-stdin", *db, stdin=PASSWORD)
    assert changed.returncode == 0, changed.stderr
    created = kairos_cli("keys", "create", "--name", "ci", "-s", "jobs:read", "--json", *db)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]
    async with (
        serving(host_app(kairos_on(url))) as base,
        httpx.AsyncClient(base_url=base + PREFIX, headers=bearer(ADMIN)) as http,
    ):
        put = await http.put("/secrets/crawler", json={"value": SECRET_VALUE})
        assert put.status_code in (200, 201), put.text
        for job_id, spec in jobs(target).items():
            answer = await http.put(f"/jobs/{job_id}", json=spec)
            assert answer.status_code == 201, answer.text
        signed = await http.post(
            "/auth/token", data={"username": "ann", "password": PASSWORD}, headers={}
        )
        assert signed.status_code == 200, signed.text

        async def tripped() -> bool:
            return bool((await http.get("/jobs/flaky")).json()["paused"])

        await eventually(tripped, "the circuit breaker to pause the failing job")
        await eventually(
            lambda: (
                len([d for d in target.deliveries if d.path == "/ping"]) >= 2 and len(TALLIES) >= 1
            ),
            "pings and tallies on the source",
        )
    return str(signed.json()["access_token"]), key


async def snapshot(url: str) -> dict[str, Any]:
    """Everything the store holds that a copy carries, runs and audit records without ids."""
    store = store_for_url(url)
    await store.open()
    try:
        runs = await store.list_runs(job_id=None, status=None, before_id=None, limit=10_000)
        return {
            "jobs": await store.list_jobs(JobQuery(), 100),
            "users": await store.list_users(),
            "keys": await store.list_api_keys(),
            "secrets": await store.list_secrets(),
            "runs": [_without_id(run) for run in runs],
            "audit": [_without_id(record) for record in await store.list_audit(limit=10_000)],
            "signing key": await store.get_meta(SIGNING_KEY_META),
        }
    finally:
        await store.close()


def _without_id(record: R) -> R:
    return dataclasses.replace(record, id=0)


def copy(source: str, destination: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return kairos_cli("db", "copy", "--from", source, "--to", destination, *extra)


async def check_served(url: str, target: RecordingTarget, token: str, key: str) -> None:
    """A server on ``url`` takes the token, password and key of before and fires the jobs,
    the secret resolved as on the source."""
    since_us = time.time_ns() // 1000
    async with (
        serving(host_app(kairos_on(url))) as base,
        httpx.AsyncClient(base_url=base + PREFIX) as http,
    ):
        assert (await http.get("/jobs", headers=bearer(token))).status_code == 200
        assert (await http.get("/jobs", headers=bearer(key))).status_code == 200
        form = {"username": "ann", "password": PASSWORD}
        assert (await http.post("/auth/token", data=form)).status_code == 200
        flaky = (await http.get("/jobs/flaky", headers=bearer(token))).json()
        assert flaky["paused"] is True

        def fired() -> list[Any]:
            return [d for d in target.deliveries if d.path == "/ping" and d.received_us > since_us]

        await eventually(lambda: bool(fired()), "a ping from the destination")
        assert fired()[0].headers["Authorization"] == f"Bearer {SECRET_VALUE}"
        await eventually(lambda: TALLIES[-1] > since_us, "a tally from the destination")


async def test_an_installation_moves_from_sqlite_to_postgres_and_on_to_redis(
    tmp_path: Path, database: str
) -> None:
    sqlite = f"sqlite:///{tmp_path}/kairos.db"
    async with RecordingTarget() as target:
        token, key = await populate(sqlite, target)
        before = await snapshot(sqlite)
        assert {job.id: job.state.value for job in before["jobs"]} == {
            "flaky": "tripped",
            "nightly": "paused",
            "ping": "scheduled",
            "tally": "scheduled",
        }
        assert before["runs"]
        assert before["audit"]
        assert before["signing key"]
        assert [user.generation for user in before["users"]] == [2]

        copied = copy(sqlite, database, "--runs", "--audit")
        assert copied.returncode == 0, copied.stderr
        assert "Copied." in copied.stdout
        assert "jobs: 4 copied" in copied.stderr
        assert await snapshot(database) == before
        await check_served(database, target, token, key)

        async with redis_store_url() as redis:
            served = await snapshot(database)  # the server on PostgreSQL added runs and audit
            onward = copy(database, redis, "--runs", "--audit", "--batch", "3")
            assert onward.returncode == 0, onward.stderr
            assert await snapshot(redis) == served
            await check_served(redis, target, token, key)


async def test_without_runs_and_audit_only_the_installation_moves(tmp_path: Path) -> None:
    source, destination = tmp_path / "from.db", tmp_path / "to.db"
    added = kairos_cli(
        "users", "add", "ann", "--password-stdin", "--db", str(source), stdin=PASSWORD
    )
    assert added.returncode == 0, added.stderr
    dry = copy(str(source), str(destination), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "Nothing copied" in dry.stdout
    assert re.search(r"users\s+│\s+1\s", dry.stdout), dry.stdout
    assert not destination.exists()
    copied = copy(str(source), str(destination))
    assert copied.returncode == 0, copied.stderr
    after = await snapshot(f"sqlite:///{destination}")
    assert [user.name for user in after["users"]] == ["ann"]
    assert after["runs"] == []
    assert after["audit"] == []


def test_a_destination_in_use_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    source, destination = str(tmp_path / "from.db"), str(tmp_path / "to.db")
    for db, name in ((source, "ann"), (destination, "bo")):
        added = kairos_cli("users", "add", name, "--password-stdin", "--db", db, stdin=PASSWORD)
        assert added.returncode == 0, added.stderr
    refused = copy(source, destination)
    assert refused.returncode == 1
    assert "already holds users" in refused.stderr
    listed = kairos_cli("users", "list", "--json", "--db", destination)
    assert [user["name"] for user in json.loads(listed.stdout)] == ["bo"]


def test_a_missing_source_file_and_a_memory_store_are_refused(tmp_path: Path) -> None:
    refused = copy(str(tmp_path / "missing.db"), str(tmp_path / "to.db"))
    assert refused.returncode == 2
    assert f"--from: no database at {tmp_path / 'missing.db'}" in refused.stderr
    assert not (tmp_path / "to.db").exists()
    in_memory = copy(str(tmp_path / "missing.db"), "memory://")
    assert in_memory.returncode == 2
    assert "--to: a memory store lives in one process" in in_memory.stderr


async def test_nodes_running_on_the_source_are_refused_unless_forced(tmp_path: Path) -> None:
    source, destination = f"sqlite:///{tmp_path}/from.db", str(tmp_path / "to.db")
    store = store_for_url(source)
    await store.open()
    try:
        await store.heartbeat("node-7", "host-a")
    finally:
        await store.close()
    refused = copy(source, destination)
    assert refused.returncode == 1
    assert "nodes are running on the source (node-7)" in refused.stderr
    forced = copy(source, destination, "--force")
    assert forced.returncode == 0, forced.stderr
