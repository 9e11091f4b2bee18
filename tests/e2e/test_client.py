"""``kairos.client`` against a real ``kairos serve``: every operation, pages as iterators, the
server's refusals as exceptions naming the field, and retries only where repeating is safe."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from kairos.client import (
    AsyncClient,
    Client,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unauthorized,
    Unreachable,
)
from tests.support.server import ADMIN_TOKEN, KairosProcess, free_port, wait_until

pytestmark = pytest.mark.e2e

TARGET = "http://127.0.0.1:9/hook"
PASSWORD = "client-password-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KairosProcess]:
    db = f"sqlite:///{tmp_path_factory.mktemp('client') / 'k.db'}"
    added = subprocess.run(
        [sys.executable, "-m", "kairos", "users", "add", "ann", "--password-stdin", "--db", db],
        input=PASSWORD,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    env: dict[str, str | None] = {"KAIROS_SECRETS_KEY": "client-secrets-key-0123456789"}
    with KairosProcess(db, env=env) as process:
        yield process


@pytest.fixture
def kairos(server: KairosProcess) -> Iterator[Client]:
    with Client(server.base_url, ADMIN_TOKEN) as client:
        yield client


def spec(**extra: Any) -> dict[str, Any]:
    trigger = {"type": "cron", "expression": "0 2 * * *"}
    return {"trigger": trigger, "target": {"url": TARGET}} | extra


def test_jobs_from_creation_to_deletion(kairos: Client) -> None:
    created = kairos.put_job("c.one", spec(tags=["client"]))
    assert (created.created, created.job.id, created.job.state) == (True, "c.one", "scheduled")
    assert kairos.put_job("c.one", spec(tags=["client"], description="again")).created is False
    assert kairos.get_job("c.one").description == "again"

    made = kairos.create_job({"id": "c.two", **spec()})
    assert made.id == "c.two"
    with pytest.raises(Conflict):
        kairos.create_job({"id": "c.two", **spec()})

    assert kairos.patch_job("c.two", {"max_instances": 3}).max_instances == 3
    assert kairos.pause_job("c.two").state == "paused"
    assert kairos.resume_job("c.two").state == "scheduled"
    run = kairos.run_job("c.two")
    assert (run.job_id, run.manual) == ("c.two", True)
    assert kairos.get_run(run.id).id == run.id
    assert run.id in [r.id for r in kairos.list_runs(job_id="c.two")]
    assert run.id in [r.id for r in kairos.list_runs()]

    # What get_job answers is taken back as it is.
    assert kairos.put_job("c.one", kairos.get_job("c.one")).created is False

    kairos.delete_job("c.two")
    with pytest.raises(NotFound) as gone:
        kairos.get_job("c.two")
    assert (gone.value.status, "c.two" in gone.value.detail) == (404, True)


def test_listing_follows_every_page(kairos: Client) -> None:
    jobs = [{"id": f"page.{n:02}", **spec(tags=["paged"])} for n in range(7)]
    assert kairos.put_jobs(jobs).created == 7
    listed = [job.id for job in kairos.list_jobs(tag="paged", page_size=3)]
    assert listed == [f"page.{n:02}" for n in range(7)]
    first = kairos.job_page(limit=3, tag="paged")
    assert (len(first.items), first.next_cursor is not None) == (3, True)
    assert [j.id for j in kairos.list_jobs(prefix="page.0", page_size=2)] == listed
    changes = list(kairos.list_audit(target="page.03", page_size=1))
    assert [entry.action for entry in changes] == ["job.create"]


def test_apply_compares_and_applies(kairos: Client) -> None:
    documents = [{"id": "ap.a", **spec(tags=["ap"])}, {"id": "ap.b", **spec(tags=["ap"])}]
    plan = kairos.apply_jobs(documents, dry_run=True)
    assert (plan.dry_run, plan.created) == (True, ["ap.a", "ap.b"])
    with pytest.raises(NotFound):
        kairos.get_job("ap.a")
    kairos.apply_jobs(documents)
    documents[0]["description"] = "changed"
    plan = kairos.apply_jobs(documents[:1], prune=True, selector="tag=ap")
    assert (plan.changed, plan.deleted) == ({"ap.a": ["description"]}, ["ap.b"])


def test_errors_carry_the_servers_message_and_field(server: KairosProcess, kairos: Client) -> None:
    with pytest.raises(Invalid) as bad:
        kairos.put_job("c.bad", spec(trigger={"type": "cron", "expression": "61 * * * *"}))
    assert (bad.value.status, bad.value.field) == (422, "trigger.expression")
    assert "trigger.expression" in str(bad.value)
    with pytest.raises(Invalid) as unknown:
        kairos.apply_jobs([{"id": "x", **spec(colour="blue")}], dry_run=True)
    assert unknown.value.field == "jobs.0.colour"
    with Client(server.base_url, "not-a-token") as stranger, pytest.raises(Unauthorized):
        stranger.get_job("c.one")

    reader = kairos.create_key("reader", ["jobs:read"])
    assert reader.key
    with Client(server.base_url, reader.key) as limited:
        assert limited.me().scopes == ["jobs:read"]
        with pytest.raises(Forbidden):
            limited.put_job("c.denied", spec())
    assert reader.id in [key.id for key in kairos.list_keys()]
    kairos.revoke_key(reader.id)
    assert [k.revoked_at is not None for k in kairos.list_keys() if k.id == reader.id] == [True]


def test_operations_auth_and_secrets(server: KairosProcess, kairos: Client) -> None:
    assert kairos.healthy() is True
    assert kairos.ready() is True
    preview = kairos.preview({"type": "cron", "expression": "0 2 * * *"}, count=3)
    assert len(preview.fire_times) == 3
    assert [node.this_node for node in kairos.cluster().nodes] == [True]
    assert kairos.targets().node_id == kairos.cluster().node_id
    assert kairos.me().name == "admin-token"
    # A call to a closed port fails once its second of grace is spent trying to connect: the
    # job's counts and the overview say so.
    closed = {"url": f"http://127.0.0.1:{free_port()}/"}
    kairos.put_job("ov.fails", spec(target=closed, misfire_grace_time=1))
    kairos.run_job("ov.fails")

    def counted() -> bool:
        return kairos.job_run_counts(["ov.fails"])[0].last_status == "failed"

    wait_until(counted, 30, what="the failed run counted")
    [counts] = kairos.job_run_counts(["ov.fails"])
    assert (counts.job_id, counts.success_rate) == ("ov.fails", 0.0)
    seen = kairos.overview(limit=100)
    assert seen.node_id == kairos.cluster().node_id
    assert seen.ended_last_hour.failed >= counts.runs.failed >= 1
    assert "ov.fails" in seen.failing_jobs
    kairos.delete_job("ov.fails")

    token = kairos.sign_in("ann", PASSWORD, ["jobs:read"])
    with Client(server.base_url, token.access_token) as ann:
        assert (ann.me().name, ann.me().scopes) == ("user:ann", ["jobs:read"])

    assert kairos.set_secret("client-secret", "s3cret").created is True
    assert kairos.set_secret("client-secret", "other").created is False
    assert [s.name for s in kairos.list_secrets()] == ["client-secret"]
    kairos.delete_secret("client-secret")
    with pytest.raises(NotFound):
        kairos.delete_secret("client-secret")


def test_the_url_and_token_come_from_the_environment(
    server: KairosProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIROS_URL", server.base_url)
    monkeypatch.setenv("KAIROS_TOKEN", ADMIN_TOKEN)
    with Client() as client:
        assert client.me().name == "admin-token"


async def test_the_async_client_does_the_same(server: KairosProcess) -> None:
    async with AsyncClient(server.base_url, ADMIN_TOKEN) as kairos:
        assert (await kairos.put_job("as.one", spec(tags=["async"]))).created is True
        await kairos.put_jobs([{"id": f"as.{n}", **spec(tags=["async"])} for n in range(2, 6)])
        listed = [job.id async for job in kairos.list_jobs(tag="async", page_size=2)]
        assert listed == ["as.2", "as.3", "as.4", "as.5", "as.one"]
        run = await kairos.run_job("as.one")
        assert (await kairos.get_run(run.id)).job_id == "as.one"
        with pytest.raises(Invalid) as bad:
            await kairos.patch_job("as.one", {"timezone": "Mars/Base"})
        assert bad.value.field == "timezone"
        await kairos.delete_job("as.one")
        with pytest.raises(NotFound):
            await kairos.get_job("as.one")


class CountingTransport(httpx.HTTPTransport):
    """The real network, counting the requests that try it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent += 1
        return super().handle_request(request)


def test_only_calls_safe_to_repeat_are_retried_when_the_connection_is_refused() -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: refused at once
    transport = CountingTransport()
    with Client(nowhere, "t", retries=2, transport=transport) as client:
        with pytest.raises(Unreachable) as read:
            client.get_job("x")
        assert (transport.sent, read.value.base_url) == (3, nowhere)
        transport.sent = 0
        with pytest.raises(Unreachable):
            client.put_job("x", spec())
        assert transport.sent == 3
        for not_safe in (
            lambda: client.create_job({"id": "x", **spec()}),
            lambda: client.run_job("x"),
        ):
            transport.sent = 0
            with pytest.raises(Unreachable):
                not_safe()
            assert transport.sent == 1
        transport.sent = 0
        with pytest.raises(Unreachable):
            client.apply_jobs([], dry_run=True)
        assert transport.sent == 3
        transport.sent = 0
        with pytest.raises(Unreachable):
            client.apply_jobs([])
        assert transport.sent == 1


def test_a_refusal_is_not_retried(server: KairosProcess) -> None:
    transport = CountingTransport()
    with (
        Client(server.base_url, ADMIN_TOKEN, transport=transport) as client,
        pytest.raises(NotFound),
    ):
        client.get_job("never.there")
    assert transport.sent == 1
