"""Users and API keys as an operator manages them: ``kairos users`` / ``kairos keys`` on the
database, sign-in and keys used against real servers, revocation seen by every replica."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import create_database, drop_database, require_postgres
from tests.support.server import KairosProcess

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"


def kairos(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kairos", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KairosProcess]:
    with KairosProcess(f"sqlite:///{tmp_path}/k.db") as process:
        yield process


def test_users_and_keys_made_with_the_cli_work_against_the_server(
    server: KairosProcess,
) -> None:
    db = ["--db", server.db_url]
    added = kairos(
        "users", "add", "ann", "-s", "jobs:read", "--password-stdin", *db, stdin=PASSWORD
    )
    assert added.returncode == 0, added.stderr
    again = kairos("users", "add", "ann", "--password-stdin", *db, stdin=PASSWORD)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    short = kairos("users", "add", "bo", "--password-stdin", *db, stdin="short")
    assert (short.returncode, "password" in short.stderr) == (2, True)
    listed = json.loads(kairos("users", "list", "--json", *db).stdout)
    assert [(u["name"], u["scopes"]) for u in listed] == [("ann", ["jobs:read"])]

    form = {"username": "ann", "password": PASSWORD}
    token = httpx.post(f"{server.base_url}/auth/token", data=form).json()["access_token"]
    with httpx.Client(base_url=server.base_url, headers=bearer(token)) as ann:
        assert ann.get("/jobs").status_code == 200
        assert ann.get("/runs").status_code == 403
        changed = kairos("users", "passwd", "ann", "--password-stdin", *db, stdin=PASSWORD + "!")
        assert changed.returncode == 0, changed.stderr
        assert ann.get("/jobs").status_code == 401

    created = kairos("keys", "create", "--name", "ci", "-s", "jobs:write", "--json", *db)
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    with httpx.Client(base_url=server.base_url, headers=bearer(key["key"])) as ci:
        assert ci.put("/jobs/j", json=_job()).status_code == 201
        revoked = kairos("keys", "revoke", key["id"], *db)
        assert revoked.returncode == 0, revoked.stderr
        assert ci.put("/jobs/j", json=_job()).status_code == 401
    assert kairos("keys", "revoke", "0123456789abcdef", *db).returncode == 1

    with server.client() as admin:
        audit = admin.get("/audit").json()["items"]
    actions = [(r["action"], r["target"]) for r in reversed(audit)]
    assert actions == [
        ("user.add", "ann"),
        ("user.passwd", "ann"),
        ("key.create", key["id"]),
        ("job.create", "j"),
        ("key.revoke", key["id"]),
    ]
    assert audit[-1]["actor"].startswith("cli")
    assert audit[1]["actor"] == f"key:{key['id']}"


@pytest.mark.postgres
def test_a_key_revoked_on_one_replica_fails_on_every_other_at_once(tmp_path: Path) -> None:
    require_postgres()
    database = create_database()
    try:
        with ExitStack() as stack:
            one, two = (stack.enter_context(KairosProcess(database)) for _ in range(2))
            with one.client() as admin:
                body = {"name": "deploy", "scopes": ["jobs:read"]}
                key = admin.post("/auth/keys", json=body).json()
            with httpx.Client(base_url=two.base_url, headers=bearer(key["key"])) as on_two:
                assert on_two.get("/jobs").status_code == 200
                with one.client() as admin:
                    assert admin.delete(f"/auth/keys/{key['id']}").status_code == 204
                response = on_two.get("/jobs")
                assert response.status_code == 401
                assert "revoked" in response.json()["detail"]

            # A user's token from one replica is good on the other: they share the signing key.
            added = kairos(
                "users", "add", "ann", "--password-stdin", "--db", database, stdin=PASSWORD
            )
            assert added.returncode == 0, added.stderr
            form = {"username": "ann", "password": PASSWORD}
            token = httpx.post(f"{one.base_url}/auth/token", data=form).json()["access_token"]
            assert httpx.get(f"{two.base_url}/jobs", headers=bearer(token)).status_code == 200
    finally:
        drop_database(database)


def _job() -> dict[str, object]:
    return {
        "trigger": {"type": "cron", "expression": "0 2 * * *"},
        "target": {"url": "http://127.0.0.1:9/hook"},
    }
