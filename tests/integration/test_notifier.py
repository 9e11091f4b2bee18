"""Webhook notifications, received by a real local server: payload, signature, retries, the
outbound guard and redirects, and the events the engine sends (a failed fire, a pause by the
circuit breaker)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from kairos.engine.notifier import Event, Notifier
from kairos.engine.secrets import Secrets
from kairos.executors.guard import OutboundGuard
from kairos.models import JobRecord, JobSpec, Webhook
from kairos.store.memory import MemoryStore
from tests.integration.test_engine import make_scheduler, soon, spec
from tests.support.target import Delivery, RecordingTarget


@pytest.fixture
async def receiver() -> AsyncIterator[RecordingTarget]:
    async with RecordingTarget() as server:
        yield server


def job(**spec_fields: Any) -> JobRecord:
    body = {
        "trigger": {"type": "interval", "seconds": 60},
        "target": {"url": "http://127.0.0.1:9/"},
    }
    return JobRecord("j", JobSpec.model_validate(body | spec_fields), None, None, 0, 0)


def signed_correctly(delivery: Delivery, secret: str) -> bool:
    signed = f"{delivery.headers['X-Kairos-Timestamp']}.{delivery.body}".encode()
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(delivery.headers["X-Kairos-Signature"], f"sha256={expected}")


@asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[Notifier]:
    async with AsyncExitStack() as stack:
        await notifier.start(stack)
        yield notifier


async def test_an_event_is_posted_as_signed_json(receiver: RecordingTarget) -> None:
    hook = {"url": receiver.url("/hook"), "secret": "s3cret"}
    async with running(Notifier(OutboundGuard(block_private=False))) as notifier:
        run = {"id": 7, "attempt": 1, "error": "HTTP 503"}
        notifier.notify(Event("failure", job(on_failure=hook), run, "HTTP 503"))
        [delivery] = await receiver.wait_for(1)
    assert delivery.method == "POST"
    assert delivery.headers["X-Kairos-Event"] == "failure"
    assert signed_correctly(delivery, "s3cret")
    assert not signed_correctly(delivery, "another")
    payload = json.loads(delivery.body)
    assert payload["event"] == "failure"
    assert payload["job"] == {"id": "j", "description": ""}
    assert payload["run"] == run
    assert payload["reason"] == "HTTP 503"


async def test_a_failed_delivery_is_retried_and_the_server_hook_is_told_too(
    receiver: RecordingTarget,
) -> None:
    own = Webhook.model_validate({"url": receiver.url("/own?fail_first=2")})
    server = Webhook.model_validate({"url": receiver.url("/server")})
    notifier = Notifier(
        OutboundGuard(block_private=False), on_pause=server, retry_delays_s=(0.01,) * 3
    )
    async with running(notifier):
        notifier.notify(Event("pause", job(on_pause=own.model_dump(mode="json")), {}, "tripped"))
        await receiver.wait_for(lambda d: len([x for x in d if x.path == "/own"]) == 3)
        await receiver.wait_for(lambda d: any(x.path == "/server" for x in d))
    own_deliveries = [d for d in receiver.deliveries if d.path == "/own"]
    assert (
        len({d.headers["X-Kairos-Delivery"] for d in own_deliveries}) == 1
    )  # one delivery, retried
    assert "X-Kairos-Signature" not in own_deliveries[0].headers  # no secret: not signed


async def undelivered(caplog: pytest.LogCaptureFixture, deadline_s: float = 10) -> str:
    """The message of the first "not delivered" line logged; fail after ``deadline_s``."""
    loop = asyncio.get_running_loop()
    end_s = loop.time() + deadline_s
    while loop.time() < end_s:
        lines = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
        if lines:
            return lines[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"nothing logged as not delivered within {deadline_s} s")


@pytest.mark.parametrize("redirect_host", ["127.0.0.1", "[::ffff:127.0.0.1]"])
async def test_a_redirect_is_a_failed_delivery_never_followed(
    receiver: RecordingTarget, caplog: pytest.LogCaptureFixture, redirect_host: str
) -> None:
    # The guard is on; the first receiver is reachable because its host name is on the allow
    # list (as with KAIROS_ALLOWED_NETWORKS=localhost). The redirect names an IP literal, which
    # no resolver sees: only not following it keeps the call from the second receiver.
    async with RecordingTarget() as second:
        location = quote(f"http://{redirect_host}:{second.port}/stolen")
        hook = {"url": f"http://localhost:{receiver.port}/hook?status=302&location={location}"}
        guard = OutboundGuard(block_private=True, allow=["localhost"])
        async with running(Notifier(guard, retry_delays_s=(0.01,))) as notifier:
            with caplog.at_level(logging.WARNING, "kairos.notifier"):
                notifier.notify(Event("failure", job(on_failure=hook), {}, "HTTP 500"))
                line = await undelivered(caplog)
        assert second.deliveries == []
    assert [d.path for d in receiver.deliveries] == ["/hook"]  # not retried either
    assert line.endswith("not delivered: HTTP 302 (redirects are not followed)")


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"])
async def test_a_webhook_to_a_blocked_address_is_refused_without_connecting(
    receiver: RecordingTarget, caplog: pytest.LogCaptureFixture, host: str
) -> None:
    hook = {"url": f"http://{host}:{receiver.port}/hook"}
    async with running(Notifier(OutboundGuard(block_private=True))) as notifier:
        with caplog.at_level(logging.WARNING, "kairos.notifier"):
            notifier.notify(Event("failure", job(on_failure=hook), {}, "HTTP 500"))
            line = await undelivered(caplog)
    assert receiver.deliveries == []  # 127.0.0.1 was listening: the guard stopped the call
    assert "not delivered: refused: " in line
    assert "is a private or loopback address" in line


async def test_the_engine_tells_of_failed_fires_and_of_the_breaker_pausing_a_job(
    tmp_path: Path, receiver: RecordingTarget
) -> None:
    scheduler = make_scheduler(
        tmp_path, on_pause_url=receiver.url("/server-pause"), on_failure_url=receiver.url("/all")
    )
    await scheduler.start()
    try:
        failing = spec(
            receiver.url("/target?status=500"),
            soon(0.1),
            max_consecutive_failures=1,
            on_failure={"url": receiver.url("/failure"), "secret": "k"},
            on_pause={"url": receiver.url("/pause")},
        )
        await scheduler.create_job("bad", failing)
        paths = {"/failure", "/pause", "/server-pause", "/all"}
        await receiver.wait_for(lambda d: paths <= {x.path for x in d})
    finally:
        await scheduler.stop()
    events = {d.path: json.loads(d.body) for d in receiver.deliveries if d.path in paths}
    failure = events["/failure"]
    assert (failure["event"], failure["job"]["id"]) == ("failure", "bad")
    assert (failure["run"]["http_status"], failure["run"]["error"]) == (
        500,
        "HTTP 500 Internal Server Error",
    )
    assert events["/all"]["run"]["id"] == failure["run"]["id"]
    pause = events["/pause"]
    assert pause["event"] == "pause"
    assert pause["reason"].startswith("paused by the circuit breaker after 1 failed fires in a row")
    assert events["/server-pause"]["reason"] == pause["reason"]


async def test_an_undelivered_webhook_is_logged_without_its_urls_password(
    receiver: RecordingTarget, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kairos.notifier")
    url = receiver.url("/hook?status=400").replace("http://", "http://ops:h00kpw@")
    async with running(Notifier(OutboundGuard(block_private=False))) as notifier:
        notifier.notify(Event("failure", job(on_failure={"url": url}), {}, "HTTP 500"))
        [delivery] = await receiver.wait_for(1)
        deadline = time.monotonic() + 10
        while "not delivered" not in caplog.text:
            assert time.monotonic() < deadline, "the failed delivery was not logged"
            await asyncio.sleep(0.01)
    assert delivery.headers["Authorization"].startswith("Basic ")  # the password was sent
    [line] = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert "ops:***@127.0.0.1" in line
    assert "h00kpw" not in caplog.text


async def test_a_secret_by_reference_signs_with_its_value(
    receiver: RecordingTarget, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KAIROS_TEST_HOOK_SECRET", "from-the-environment")
    secrets = Secrets(MemoryStore(), None)
    hook = {"url": receiver.url("/hook"), "secret": "${env:KAIROS_TEST_HOOK_SECRET}"}
    unset = {"url": receiver.url("/unset"), "secret": "${secret:gone}"}
    notifier = Notifier(OutboundGuard(block_private=False), resolve=secrets.resolved_webhook)
    async with running(notifier):
        notifier.notify(Event("failure", job(on_failure=unset), {"id": 1}, "HTTP 503"))
        notifier.notify(Event("failure", job(on_failure=hook), {"id": 2}, "HTTP 503"))
        [delivery] = await receiver.wait_for(1)
        async with asyncio.timeout(10):  # the other worker logs the hook it could not sign
            while True:
                if "${secret:gone}: this server keeps no secrets" in caplog.text:
                    break
                await asyncio.sleep(0.01)
    assert signed_correctly(delivery, "from-the-environment")
    assert delivery.path == "/hook"
