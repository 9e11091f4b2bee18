"""The HTTP executor against real local servers: what arrives, and every way a call fails."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from kairos.executors import Executor
from kairos.executors.base import Call, Outcome
from kairos.executors.guard import OutboundGuard
from kairos.executors.http import HttpExecutor, _described
from kairos.executors.workers import WorkerPoolExecutor
from kairos.models import HttpTarget
from kairos.settings import Settings
from tests.support.target import RecordingTarget, ThreadedTarget

SCHEDULED_US = 1_795_000_000_123_456


OPTIONS: dict[str, Any] = {
    "max_connections": 100,
    "response_excerpt_bytes": 1024,
    "default_timeout_s": 5,
    "guard": OutboundGuard(block_private=False),
    "retry_statuses": Settings().retry_statuses,
}


@pytest.fixture(params=["in-process", "worker-process"])
async def executor(request: pytest.FixtureRequest) -> AsyncIterator[Executor]:
    """Every test runs against both: calls made here, and calls made by a worker process."""
    http: Executor = (
        HttpExecutor(**OPTIONS) if request.param == "in-process" else WorkerPoolExecutor(1, OPTIONS)
    )
    await http.start()
    yield http
    await http.close()


@pytest.fixture
async def target() -> AsyncIterator[RecordingTarget]:
    async with RecordingTarget() as server:
        yield server


def call(url: str, run_id: int = 7, **target: Any) -> Call:
    return Call("job-1", run_id, SCHEDULED_US, 2, HttpTarget(url=url, **target))  # type: ignore[arg-type]


async def test_json_call_carries_the_kairos_headers(
    executor: Executor, target: RecordingTarget
) -> None:
    outcome = await executor.execute(
        call(target.url("/hook"), body={"a": 1}, headers={"Authorization": "Bearer x"})
    )
    assert outcome == Outcome(True, code=200, detail="ok")
    [delivery] = target.deliveries
    assert delivery.method == "POST"
    assert json.loads(delivery.body) == {"a": 1}
    headers = delivery.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer x"
    assert headers["X-Kairos-Job-Id"] == "job-1"
    assert headers["X-Kairos-Run-Id"] == "7"
    assert headers["X-Kairos-Scheduled-For"] == "2026-11-18T11:06:40.123456+00:00"
    assert headers["X-Kairos-Attempt"] == "2"
    assert headers["Idempotency-Key"] == "job-1@2026-11-18T11:06:40.123456+00:00"
    assert headers["User-Agent"].startswith("kairos/")


async def test_text_body_and_custom_content_type(
    executor: Executor, target: RecordingTarget
) -> None:
    await executor.execute(call(target.url("/t"), body="plain"))
    await executor.execute(
        call(target.url("/t"), body="<x/>", headers={"content-type": "application/xml"})
    )
    first, second = target.deliveries
    assert (first.body, first.headers["Content-Type"]) == ("plain", "text/plain; charset=utf-8")
    assert (second.body, second.headers["Content-Type"]) == ("<x/>", "application/xml")


async def test_get_without_body(executor: Executor, target: RecordingTarget) -> None:
    assert (await executor.execute(call(target.url("/g"), method="GET"))).succeeded
    assert target.deliveries[0].method == "GET"
    assert target.deliveries[0].body == ""


async def test_server_error_is_a_failed_run_with_its_status(
    executor: Executor, target: RecordingTarget
) -> None:
    outcome = await executor.execute(call(target.url("/x?status=503")))
    assert outcome == Outcome(
        False,
        code=503,
        error="HTTP 503 Service Unavailable",
        detail="ok",
        retryable=True,
        overloaded=True,
    )


async def test_redirects_are_not_followed(executor: Executor, target: RecordingTarget) -> None:
    outcome = await executor.execute(call(target.url("/x?status=302")))
    assert (outcome.succeeded, outcome.code, outcome.retryable) == (False, 302, False)
    assert len(target.deliveries) == 1


async def test_timeout_ends_the_call_long_before_the_target_answers(
    executor: Executor, target: RecordingTarget
) -> None:
    started = time.monotonic()
    outcome = await executor.execute(call(target.url("/slow?delay=30"), timeout=0.3))
    assert outcome == Outcome(False, error="timed out after 0.3 s", retryable=True)
    assert time.monotonic() - started < 10


async def test_refused_connection_says_so(executor: Executor) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = await executor.execute(call(f"http://127.0.0.1:{port}/"))
    assert not outcome.succeeded
    assert f"cannot connect to 127.0.0.1:{port}" in (outcome.error or "")
    assert outcome.retryable


async def test_unknown_host_says_so(executor: Executor) -> None:
    outcome = await executor.execute(call("http://no-such-host.invalid/"))
    assert not outcome.succeeded
    assert "no-such-host.invalid" in (outcome.error or "")


async def test_a_huge_body_is_cut_to_the_excerpt_without_reading_it_all(
    executor: Executor, target: RecordingTarget
) -> None:
    size = 100 * 1024 * 1024
    outcome = await executor.execute(call(target.url(f"/big?size={size}")))
    assert outcome.succeeded
    assert outcome.detail == "x" * 1024
    assert target.bytes_sent < size


async def test_a_dropped_connection_is_a_failed_run(
    executor: Executor, target: RecordingTarget
) -> None:
    outcome = await executor.execute(call(target.url("/drop")))
    assert not outcome.succeeded
    assert outcome.error
    assert outcome.retryable


async def test_many_concurrent_calls_each_arrive_once(
    executor: Executor, target: RecordingTarget
) -> None:
    # Each outcome is its own call's (a worker's answers travel many to a message).
    statuses = [(200, 201, 404, 503, 429)[i % 5] for i in range(500)]
    outcomes = await asyncio.gather(
        *(
            executor.execute(call(target.url(f"/c?status={status}"), run_id=i))
            for i, status in enumerate(statuses)
        )
    )
    assert [o.code for o in outcomes] == statuses
    assert [o.succeeded for o in outcomes] == [s < 300 for s in statuses]
    run_ids = sorted(int(d.headers["X-Kairos-Run-Id"]) for d in target.deliveries)
    assert run_ids == list(range(500))


async def test_a_stored_body_that_cannot_be_sent_fails_without_a_call(
    executor: Executor, target: RecordingTarget
) -> None:
    # Bodies are checked when a job is written; one stored before a check existed (an integer
    # beyond 64 bits) fails its run with the reason, and nothing is sent.
    spec = {"url": target.url("/big"), "body": {"n": 2**64}}
    stored = HttpTarget.model_validate(spec, context={"stored": True})
    outcome = await executor.execute(Call("job-1", 7, SCHEDULED_US, 1, stored))
    assert not outcome.succeeded
    assert not outcome.retryable
    assert "cannot be sent as JSON" in (outcome.error or "")
    assert target.deliveries == []


async def test_cookies_set_by_a_target_are_never_sent_back(
    executor: Executor, target: RecordingTarget
) -> None:
    # One job's target must not see (or plant) state in another job's calls to the same host.
    # By name: a cookie jar ignores cookies from bare IP addresses anyway.
    by_name = target.url("/").replace("127.0.0.1", "localhost")
    first = await executor.execute(call(f"{by_name}a?set_cookie=secret"))
    assert first.succeeded
    await executor.execute(call(f"{by_name}b", run_id=8))
    [_, second] = target.deliveries
    assert "Cookie" not in second.headers


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (599, True), (404, False), (400, False)]
)
async def test_which_statuses_are_worth_another_try(
    executor: Executor, target: RecordingTarget, status: int, retryable: bool
) -> None:
    outcome = await executor.execute(call(target.url(f"/x?status={status}")))
    assert (outcome.code, outcome.retryable) == (status, retryable)
    assert outcome.overloaded == (status == 429)


async def test_retry_after_is_read_in_seconds_or_as_a_date(
    executor: Executor, target: RecordingTarget
) -> None:
    in_seconds = await executor.execute(call(target.url("/x?status=429&retry_after=7")))
    assert in_seconds.retry_after_s == 7
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    as_date = await executor.execute(call(target.url("/x?status=503&retry_after=") + quote(later)))
    assert as_date.retry_after_s is not None
    assert 100 < as_date.retry_after_s <= 120
    nonsense = await executor.execute(call(target.url("/x?status=503&retry_after=soon")))
    assert nonsense.retry_after_s is None


async def test_a_call_timeout_cuts_the_targets_own(
    executor: Executor, target: RecordingTarget
) -> None:
    cut = Call(
        "job-1", 7, SCHEDULED_US, 1, HttpTarget(url=target.url("/slow?delay=30"), timeout=60), 0.2
    )  # type: ignore[arg-type]
    outcome = await executor.execute(cut)
    assert outcome.error == "timed out after 0.2 s"


def test_an_error_that_quotes_the_url_never_shows_its_password() -> None:
    url = "http://ops:s%40cret@127.0.0.1:9/x"
    error = _described(aiohttp.InvalidURL(url), url)
    assert error == "InvalidURL: http://ops:***@127.0.0.1:9/x"
    assert "s@cret" not in _described(ValueError("bad password s@cret"), url)


async def test_an_answer_says_whether_the_target_closes_its_connections(
    executor: Executor, target: RecordingTarget
) -> None:
    kept = await executor.execute(call(target.url("/kept")))
    with ThreadedTarget() as threaded:  # HTTP/1.0: one call per connection
        closed = await executor.execute(call(threaded.url("/closed")))
    assert (kept.succeeded, kept.closed) == (True, False)
    assert (closed.succeeded, closed.closed) == (True, True)
