"""Who may do what, through the HTTP API: every kind of token against every route, users' access
tokens (expiry, tampering, password changes), API keys (revocation, expiry), sign-in slowdown,
the OpenAPI security scheme, and the audit log."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.auth import Accounts
from kairos.identity import Actor, ApiKeyRecord, Scope
from kairos.settings import Settings
from kairos.store import store_for_url

ADMIN = "admin-secret-token"
JWT_SECRET = "a-signing-key-that-is-long-enough-for-hs256"
PASSWORD = "correct horse battery"
TARGET = "http://127.0.0.1:9/hook"
JOB = {"trigger": {"type": "cron", "expression": "0 2 * * *"}, "target": {"url": TARGET}}
SCOPES = [Scope.JOBS_READ, Scope.JOBS_WRITE, Scope.RUNS_READ, Scope.ADMIN]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class World:
    """One server, with a user and an API key for each scope, and tokens of every kind."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.accounts: Accounts = client.app.state.accounts  # type: ignore[attr-defined]
        self.tokens: dict[str, str] = {"admin": ADMIN}
        for scope in SCOPES:
            name = scope.value.replace(":", "-")
            self.call(self.accounts.add_user(name, PASSWORD, frozenset([scope]), actor="test"))
            self.tokens[f"user {scope}"] = self.sign_in(name)
            key = self.create_key(name, [scope])
            self.tokens[f"key {scope}"] = key

    def call(self, coroutine: Any) -> Any:
        async def run() -> Any:
            return await coroutine

        return self.client.portal.call(run)  # type: ignore[union-attr]

    def sign_in(self, name: str, password: str = PASSWORD, **form: str) -> str:
        response = self.client.post(
            "/auth/token", data={"username": name, "password": password, **form}
        )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def create_key(self, name: str, scopes: list[Scope], **extra: Any) -> str:
        body = {"name": name, "scopes": scopes, **extra}
        response = self.client.post("/auth/keys", json=body, headers=bearer(ADMIN))
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    settings = Settings(database_url="memory://", admin_token=ADMIN, jwt_secret=JWT_SECRET)
    with TestClient(create_app(settings)) as client:
        yield World(client)


@pytest.fixture
def fresh() -> Iterator[TestClient]:
    """A server of its own, for tests that change who exists or count sign-in failures."""
    settings = Settings(database_url="memory://", admin_token=ADMIN, jwt_secret=JWT_SECRET)
    with TestClient(create_app(settings)) as client:
        yield client


# Every token kind on every route ------------------------------------------------------------------

ROUTES: list[tuple[str, str, Scope | None]] = [
    ("GET", "/jobs", Scope.JOBS_READ),
    ("GET", "/jobs/nope", Scope.JOBS_READ),
    ("POST", "/triggers/preview", Scope.JOBS_READ),
    ("POST", "/jobs", Scope.JOBS_WRITE),
    ("PUT", "/jobs/x", Scope.JOBS_WRITE),
    ("PATCH", "/jobs/nope", Scope.JOBS_WRITE),
    ("DELETE", "/jobs/nope", Scope.JOBS_WRITE),
    ("POST", "/jobs/nope/pause", Scope.JOBS_WRITE),
    ("POST", "/jobs/nope/resume", Scope.JOBS_WRITE),
    ("POST", "/jobs/nope/run", Scope.JOBS_WRITE),
    ("POST", "/jobs:batch", Scope.JOBS_WRITE),
    ("POST", "/tasks", Scope.JOBS_WRITE),
    ("DELETE", "/tasks/nope", Scope.JOBS_WRITE),
    ("GET", "/runs", Scope.RUNS_READ),
    ("GET", "/runs/1", Scope.RUNS_READ),
    ("GET", "/jobs/nope/runs", Scope.RUNS_READ),
    ("POST", "/runs/1/cancel", Scope.JOBS_WRITE),
    ("GET", "/cluster", Scope.ADMIN),
    ("GET", "/audit", Scope.ADMIN),
    ("GET", "/auth/keys", Scope.ADMIN),
    ("POST", "/auth/keys", Scope.ADMIN),
    ("DELETE", "/auth/keys/nope", Scope.ADMIN),
    ("GET", "/auth/me", None),
]
KINDS = ["admin", *(f"{kind} {scope}" for kind in ("user", "key") for scope in SCOPES)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("method", "path", "needed"), ROUTES)
def test_each_token_kind_on_each_route(
    world: World, kind: str, method: str, path: str, needed: Scope | None
) -> None:
    held = Scope.ADMIN if kind == "admin" else Scope(kind.split(" ", 1)[1])
    allowed = needed is None or held in (needed, Scope.ADMIN)
    response = world.client.request(method, path, headers=bearer(world.tokens[kind]), json={})
    if allowed:
        # Through the gate: what follows is the route's own answer (found, invalid, ...).
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text
        assert needed is not None
        assert repr(needed.value) in response.json()["detail"]
        assert f'scope="{needed.value}"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(("method", "path", "needed"), ROUTES)
@pytest.mark.parametrize(
    "header", [None, "Bearer", "Bearer wrong", "Basic YTpi", "Bearer kairos_key_0123456789abcdef_x"]
)
def test_no_valid_token_is_401_on_each_route(
    world: World, method: str, path: str, needed: Scope | None, header: str | None
) -> None:
    headers = {"Authorization": header or ""}
    response = world.client.request(method, path, headers=headers, json={})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"])
def test_open_routes_need_no_token(world: World, path: str) -> None:
    assert world.client.get(path, headers={"Authorization": ""}).status_code == 200


def test_who_am_i_names_the_caller_and_its_scopes(world: World) -> None:
    me = world.client.get("/auth/me", headers=bearer(world.tokens["user runs:read"])).json()
    assert me == {"name": "user:runs-read", "scopes": ["runs:read"]}
    me = world.client.get("/auth/me", headers=bearer(ADMIN)).json()
    assert me["name"] == "admin-token"
    assert set(me["scopes"]) == {s.value for s in SCOPES}


# Users' access tokens ----------------------------------------------------------------------------


def test_sign_in_answers_the_contract_shape(world: World) -> None:
    response = world.client.post(
        "/auth/token", data={"username": "jobs-read", "password": PASSWORD}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"], issuer="kairos")
    assert claims["sub"] == "jobs-read"
    assert claims["exp"] - claims["iat"] == 3600
    assert body["scope"] == claims["scope"] == "jobs:read"


def test_sign_in_grants_only_scopes_asked_for_that_the_user_has(fresh: TestClient) -> None:
    accounts: Accounts = fresh.app.state.accounts  # type: ignore[attr-defined]
    scopes = frozenset([Scope.JOBS_READ, Scope.JOBS_WRITE])
    fresh.portal.call(lambda: accounts.add_user("ann", PASSWORD, scopes, actor="t"))  # type: ignore[union-attr]
    form = {"username": "ann", "password": PASSWORD, "scope": "jobs:read admin"}
    token = fresh.post("/auth/token", data=form).json()
    assert token["scope"] == "jobs:read"
    assert fresh.put("/jobs/j", json=JOB, headers=bearer(token["access_token"])).status_code == 403
    unknown = fresh.post("/auth/token", data=form | {"scope": "jobs:everything"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "scope"]


@pytest.mark.parametrize(
    ("name", "password"), [("jobs-read", "wrong password"), ("nobody", PASSWORD)]
)
def test_a_wrong_password_or_unknown_user_is_401_saying_neither_which(
    world: World, name: str, password: str
) -> None:
    response = world.client.post("/auth/token", data={"username": name, "password": password})
    assert response.status_code == 401
    assert response.json() == {"detail": "Incorrect user name or password"}
    assert response.headers["www-authenticate"] == "Bearer"


def test_sign_in_without_a_field_is_422_naming_it(world: World) -> None:
    response = world.client.post("/auth/token", data={"username": "jobs-read"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": "kairos", "sub": "admin", "iat": now, "exp": now + 600}
    return claims | {"scope": "admin", "gen": 1} | changes


def test_an_expired_access_token_is_401_saying_so(world: World) -> None:
    now = int(time.time())
    token = jwt.encode(_claims(sub="admin", iat=now - 7200, exp=now - 1), JWT_SECRET)
    response = world.client.get("/auth/me", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_token_whose_payload_was_changed_is_401(world: World) -> None:
    header, payload, signature = world.tokens["user jobs:read"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    response = world.client.get("/audit", headers=bearer(f"{header}.{forged}.{signature}"))
    assert response.status_code == 401


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode(_claims(), "some-other-key-some-other-key-some-other"),
        jwt.encode(_claims(), None, algorithm="none"),
        jwt.encode({k: v for k, v in _claims().items() if k != "exp"}, JWT_SECRET),
        jwt.encode(_claims(iss="someone-else"), JWT_SECRET),
        jwt.encode(_claims(scope="root"), JWT_SECRET),
        "not.a.jwt",
    ],
    ids=["foreign-key", "alg-none", "no-expiry", "foreign-issuer", "unknown-scope", "garbage"],
)
def test_access_tokens_not_signed_and_shaped_by_kairos_are_401(world: World, token: str) -> None:
    assert world.client.get("/auth/me", headers=bearer(token)).status_code == 401


def test_a_password_change_or_removal_ends_the_users_tokens_at_once(fresh: TestClient) -> None:
    accounts: Accounts = fresh.app.state.accounts  # type: ignore[attr-defined]
    call = fresh.portal.call  # type: ignore[union-attr]
    call(lambda: accounts.add_user("bo", PASSWORD, frozenset([Scope.JOBS_READ]), actor="t"))

    def token(password: str = PASSWORD) -> str:
        response = fresh.post("/auth/token", data={"username": "bo", "password": password})
        return str(response.json()["access_token"])

    old = token()
    assert fresh.get("/jobs", headers=bearer(old)).status_code == 200
    call(lambda: accounts.set_password("bo", "a brand new password", actor="t"))
    assert fresh.get("/jobs", headers=bearer(old)).status_code == 401
    assert (
        fresh.post("/auth/token", data={"username": "bo", "password": PASSWORD}).status_code == 401
    )
    new = token("a brand new password")
    call(lambda: accounts.set_scopes("bo", frozenset([Scope.RUNS_READ]), actor="t"))
    assert fresh.get("/jobs", headers=bearer(new)).status_code == 401
    newest = token("a brand new password")
    assert fresh.get("/runs", headers=bearer(newest)).status_code == 200
    call(lambda: accounts.remove_user("bo", actor="t"))
    response = fresh.get("/runs", headers=bearer(newest))
    assert response.status_code == 401
    assert "no longer exists" in response.json()["detail"]


def test_a_token_of_a_removed_user_is_refused_when_the_name_is_added_again(
    fresh: TestClient,
) -> None:
    accounts: Accounts = fresh.app.state.accounts  # type: ignore[attr-defined]
    call = fresh.portal.call  # type: ignore[union-attr]
    scopes = frozenset([Scope.JOBS_READ])
    call(lambda: accounts.add_user("bo", PASSWORD, scopes, actor="t"))
    form = {"username": "bo", "password": PASSWORD}
    old = fresh.post("/auth/token", data=form).json()["access_token"]
    call(lambda: accounts.remove_user("bo", actor="t"))
    call(lambda: accounts.add_user("bo", PASSWORD, scopes, actor="t"))
    response = fresh.get("/jobs", headers=bearer(old))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    new = fresh.post("/auth/token", data=form).json()["access_token"]
    assert fresh.get("/jobs", headers=bearer(new)).status_code == 200


# Brute force --------------------------------------------------------------------------------------


def test_repeated_failed_sign_ins_are_slowed_and_logged(
    fresh: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    accounts: Accounts = fresh.app.state.accounts  # type: ignore[attr-defined]
    fresh.portal.call(
        lambda: accounts.add_user("cy", PASSWORD, frozenset([Scope.JOBS_READ]), actor="t")
    )  # type: ignore[union-attr]
    caplog.set_level(logging.WARNING, logger="kairos.auth")
    for _ in range(5):
        wrong = fresh.post("/auth/token", data={"username": "cy", "password": "guess guess"})
        assert wrong.status_code == 401
    # Even the right password now waits: the answer must not tell a guesser it was right.
    refused = fresh.post("/auth/token", data={"username": "cy", "password": PASSWORD})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert "try again in" in refused.json()["detail"]
    failures = [r for r in caplog.records if "failed sign-in as 'cy'" in r.getMessage()]
    assert len(failures) == 5
    assert any("refused" in r.getMessage() for r in caplog.records)


# API keys ----------------------------------------------------------------------------------------


def test_a_key_is_shown_once_and_listed_without_its_text(fresh: TestClient) -> None:
    created = fresh.post(
        "/auth/keys", json={"name": "deploy", "scopes": ["jobs:write"]}, headers=bearer(ADMIN)
    ).json()
    assert created["key"].startswith(f"kairos_key_{created['id']}_")
    assert created["created_by"] == "admin-token"
    listed = fresh.get("/auth/keys", headers=bearer(ADMIN)).json()["items"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert created["key"] not in json.dumps(listed)


def test_a_revoked_key_fails_at_once(fresh: TestClient) -> None:
    created = fresh.post(
        "/auth/keys", json={"name": "ci", "scopes": ["jobs:read"]}, headers=bearer(ADMIN)
    ).json()
    assert fresh.get("/jobs", headers=bearer(created["key"])).status_code == 200
    assert fresh.delete(f"/auth/keys/{created['id']}", headers=bearer(ADMIN)).status_code == 204
    response = fresh.get("/jobs", headers=bearer(created["key"]))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    listed = fresh.get("/auth/keys", headers=bearer(ADMIN)).json()["items"]
    assert listed[0]["revoked_at"] is not None
    assert fresh.delete("/auth/keys/0123456789abcdef", headers=bearer(ADMIN)).status_code == 404


def test_an_expired_key_fails(tmp_path: Path) -> None:
    key = ApiKeyRecord(
        "0123456789abcdef",
        "old",
        __import__("kairos.auth.api_keys", fromlist=["x"]).secret_digest("s" * 43),
        frozenset([Scope.ADMIN]),
        created_us=1,
        created_by="t",
        expires_us=int(time.time() * 1e6) - 1,
    )
    url = f"sqlite:///{tmp_path}/kairos.db"
    settings = Settings(database_url=url, admin_token=ADMIN, jwt_secret=JWT_SECRET)
    with TestClient(create_app(settings)) as client:
        client.portal.call(_add_api_key, url, key)
        response = client.get("/jobs", headers=bearer("kairos_key_0123456789abcdef_" + "s" * 43))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


async def _add_api_key(url: str, key: ApiKeyRecord) -> None:
    """As another replica would (the API makes no key that is expired already): through a store
    of its own on the same database."""
    store = store_for_url(url)
    await store.open()
    try:
        await store.add_api_key(key, by=Actor("t", 1))
    finally:
        await store.close()


def test_a_tampered_key_secret_fails(world: World) -> None:
    key = world.tokens["key admin"]
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert world.client.get("/jobs", headers=bearer(tampered)).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scopes": ["jobs:read"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["jobs:all"]}, "scopes"),
        ({"name": "x", "scopes": ["admin"], "expires_in": 0}, "expires_in"),
    ],
)
def test_a_bad_key_request_is_422_naming_the_field(
    world: World, body: dict[str, Any], field: str
) -> None:
    response = world.client.post("/auth/keys", json=body, headers=bearer(ADMIN))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]


# The OpenAPI document ----------------------------------------------------------------------------


def test_openapi_declares_both_ways_in_and_each_routes_scope(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    flows = schemes["OAuth2PasswordBearer"]["flows"]["password"]
    assert flows["tokenUrl"] == "auth/token"
    assert set(flows["scopes"]) == {s.value for s in SCOPES}
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    put = spec["paths"]["/jobs/{job_id}"]["put"]["security"]
    assert {"OAuth2PasswordBearer": ["jobs:write"]} in put
    runs = spec["paths"]["/runs"]["get"]["security"]
    assert {"OAuth2PasswordBearer": ["runs:read"]} in runs
    assert "security" not in spec["paths"]["/auth/token"]["post"]


# The audit log -----------------------------------------------------------------------------------


def audit(client: TestClient, **query: str) -> list[dict[str, Any]]:
    response = client.get("/audit", params=query, headers=bearer(ADMIN))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_every_change_is_audited_with_who_and_what(fresh: TestClient) -> None:
    key = fresh.post(
        "/auth/keys", json={"name": "ops", "scopes": ["jobs:write"]}, headers=bearer(ADMIN)
    ).json()
    as_key = bearer(key["key"])
    secret = {"url": TARGET, "headers": {"Authorization": "Bearer hush"}}
    assert (
        fresh.post("/jobs", json=JOB | {"id": "a", "target": secret}, headers=as_key).status_code
        == 201
    )
    assert fresh.put("/jobs/a", json=JOB | {"target": secret}, headers=as_key).status_code == 200
    assert fresh.patch("/jobs/a", json={"max_instances": 2}, headers=as_key).status_code == 200
    assert fresh.post("/jobs/a/pause", headers=as_key).status_code == 200
    assert fresh.post("/jobs/a/resume", headers=as_key).status_code == 200
    assert fresh.post("/jobs/a/run", headers=as_key).status_code == 202
    assert fresh.delete("/jobs/a?purge_runs=true", headers=as_key).status_code == 204
    assert fresh.delete(f"/auth/keys/{key['id']}", headers=bearer(ADMIN)).status_code == 204

    records = audit(fresh)
    actions = [(r["actor"], r["action"], r["target"]) for r in reversed(records)]
    who = f"key:{key['id']}"
    assert actions == [
        ("admin-token", "key.create", key["id"]),
        (who, "job.create", "a"),
        (who, "job.replace", "a"),
        (who, "job.update", "a"),
        (who, "job.pause", "a"),
        (who, "job.resume", "a"),
        (who, "job.run", "a"),
        (who, "job.delete", "a"),
        ("admin-token", "key.revoke", key["id"]),
    ]
    by_action = {r["action"]: r for r in records}
    assert by_action["job.create"]["detail"]["target"]["headers"] == {"Authorization": "***"}
    assert "hush" not in json.dumps(records)
    assert by_action["job.delete"]["detail"] == {"purge_runs": True}
    assert by_action["key.create"]["detail"] == {"name": "ops", "scopes": ["jobs:write"]}
    assert audit(fresh, target="a", actor=who)[0]["action"] == "job.delete"


def test_a_refused_change_leaves_no_audit_record(fresh: TestClient) -> None:
    assert fresh.post("/jobs", json=JOB | {"id": "b"}, headers=bearer(ADMIN)).status_code == 201
    before = audit(fresh)
    assert fresh.post("/jobs", json=JOB | {"id": "b"}, headers=bearer(ADMIN)).status_code == 409
    assert fresh.post("/jobs/zzz/pause", headers=bearer(ADMIN)).status_code == 404
    bad = JOB | {"trigger": {"type": "cron", "expression": "61 * * * *"}}
    assert fresh.put("/jobs/b", json=bad, headers=bearer(ADMIN)).status_code == 422
    assert audit(fresh) == before


def test_the_audit_log_pages_newest_first(fresh: TestClient) -> None:
    for index in range(5):
        fresh.put(f"/jobs/p{index}", json=JOB, headers=bearer(ADMIN))
    first = fresh.get("/audit?limit=3", headers=bearer(ADMIN)).json()
    assert [r["target"] for r in first["items"]] == ["p4", "p3", "p2"]
    rest = fresh.get(f"/audit?limit=3&cursor={first['next_cursor']}", headers=bearer(ADMIN)).json()
    assert [r["target"] for r in rest["items"]] == ["p1", "p0"]
    assert rest["next_cursor"] is None
    assert fresh.get("/audit?cursor=%21", headers=bearer(ADMIN)).status_code == 422
