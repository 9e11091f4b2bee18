"""Webhook notifications, received by a real local server: payload, signature, retries, and the
events the engine sends (a failed fire, a pause by the circuit breaker)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kairos.engine.notifier import Event, Notifier
from kairos.executors.guard import OutboundGuard
from kairos.models import JobRecord, JobSpec, Webhook
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


async def started(notifier: Notifier) -> Notifier:
    await notifier.start()
    return notifier


async def test_an_event_is_posted_as_signed_json(receiver: RecordingTarget) -> None:
    hook = {"url": receiver.url("/hook"), "secret": "s3cret"}
    notifier = await started(Notifier(OutboundGuard(block_private=False)))
    try:
        run = {"id": 7, "attempt": 1, "error": "HTTP 503"}
        notifier.notify(Event("failure", job(on_failure=hook), run, "HTTP 503"))
        [delivery] = await receiver.wait_for(1)
    finally:
        await notifier.close()
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
    await notifier.start()
    try:
        notifier.notify(Event("pause", job(on_pause=own.model_dump(mode="json")), {}, "tripped"))
        await receiver.wait_for(lambda d: len([x for x in d if x.path == "/own"]) == 3)
        await receiver.wait_for(lambda d: any(x.path == "/server" for x in d))
    finally:
        await notifier.close()
    own_deliveries = [d for d in receiver.deliveries if d.path == "/own"]
    assert (
        len({d.headers["X-Kairos-Delivery"] for d in own_deliveries}) == 1
    )  # one delivery, retried
    assert "X-Kairos-Signature" not in own_deliveries[0].headers  # no secret: not signed


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
    notifier = await started(Notifier(OutboundGuard(block_private=False)))
    try:
        notifier.notify(Event("failure", job(on_failure={"url": url}), {}, "HTTP 500"))
        [delivery] = await receiver.wait_for(1)
        deadline = time.monotonic() + 10
        while "not delivered" not in caplog.text:
            assert time.monotonic() < deadline, "the failed delivery was not logged"
            await asyncio.sleep(0.01)
    finally:
        await notifier.close()
    assert delivery.headers["Authorization"].startswith("Basic ")  # the password was sent
    [line] = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert "ops:***@127.0.0.1" in line
    assert "h00kpw" not in caplog.text
