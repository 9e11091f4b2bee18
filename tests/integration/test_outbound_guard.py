"""The outbound guard: which addresses target calls may reach, judged on real calls to real
local servers (on loopback: the machine has no private-range address to bind a target to)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kairos.executors.base import Call
from kairos.executors.guard import OutboundGuard
from kairos.executors.http import HttpExecutor
from kairos.models import HttpTarget, RunStatus
from tests.integration.test_engine import make_scheduler, soon, spec, wait_runs
from tests.support.target import RecordingTarget

LOOPBACK_REFUSED = "is a private or loopback address, refused because KAIROS_BLOCK_PRIVATE_NETWORKS"


@pytest.fixture
async def target() -> AsyncIterator[RecordingTarget]:
    async with RecordingTarget() as server:
        yield server


async def call(guard: OutboundGuard, url: str) -> tuple[bool, str | None]:
    executor = HttpExecutor(
        max_connections=10, response_excerpt_bytes=0, default_timeout_s=5, guard=guard
    )
    await executor.start()
    try:
        outcome = await executor.execute(Call("job", 1, 0, 1, HttpTarget(url=url)))  # type: ignore[arg-type]
    finally:
        await executor.close()
    return outcome.succeeded, outcome.error


@pytest.mark.parametrize(
    ("address", "refused_by_default", "refused_when_blocking"),
    [
        ("169.254.169.254", True, True),  # AWS, GCP, Azure metadata
        ("::ffff:169.254.169.254", True, True),  # the same, IPv4-mapped
        ("fd00:ec2::254", True, True),  # AWS metadata over IPv6
        ("fe80::1", True, True),
        ("fe80::1%eth0", True, True),
        ("10.1.2.3", False, True),
        ("172.16.0.1", False, True),
        ("192.168.1.1", False, True),
        ("100.64.0.1", False, True),
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("0.0.0.0", False, True),
        ("fc00::1", False, True),
        ("93.184.215.14", False, False),
        ("2606:4700::1111", False, False),
    ],
)
def test_which_addresses_are_refused(
    address: str, refused_by_default: bool, refused_when_blocking: bool
) -> None:
    open_guard = OutboundGuard(block_private=False)
    blocking = OutboundGuard(block_private=True)
    assert (open_guard.refusal("h", address) is not None) is refused_by_default
    assert (blocking.refusal("h", address) is not None) is refused_when_blocking


def test_the_allow_list_exempts_networks_and_names_but_never_metadata() -> None:
    guard = OutboundGuard(
        block_private=True,
        allow=["10.0.0.0/8", "192.168.1.5", "billing.internal", "169.254.0.0/16"],
    )
    assert guard.refusal("x", "10.9.9.9") is None
    assert guard.refusal("x", "192.168.1.5") is None
    assert guard.refusal("x", "192.168.1.6") is not None
    assert guard.refusal("Billing.Internal.", "172.20.0.4") is None
    assert "never called" in (guard.refusal("x", "169.254.169.254") or "")


async def test_a_metadata_address_is_refused_without_being_called() -> None:
    ok, error = await call(OutboundGuard(block_private=False), "http://169.254.169.254/latest/")
    assert not ok
    assert error == (
        "refused: 169.254.169.254 is a link-local (cloud metadata) address, which is never called"
    )


async def test_loopback_is_called_unless_private_networks_are_blocked(
    target: RecordingTarget,
) -> None:
    assert await call(OutboundGuard(block_private=False), target.url("/open")) == (True, None)
    ok, error = await call(OutboundGuard(block_private=True), target.url("/literal"))
    assert not ok
    assert LOOPBACK_REFUSED in (error or "")
    # A name is judged by what it resolves to, when the call is made.
    by_name = target.url("/name").replace("127.0.0.1", "localhost")
    ok, error = await call(OutboundGuard(block_private=True), by_name)
    assert not ok
    assert (error or "").startswith("refused: localhost (")
    assert [d.path for d in target.deliveries] == ["/open"]


async def test_the_allow_list_lets_named_exceptions_through(target: RecordingTarget) -> None:
    by_network = OutboundGuard(block_private=True, allow=["127.0.0.0/8"])
    by_name = OutboundGuard(block_private=True, allow=["localhost"])
    assert await call(by_network, target.url("/network")) == (True, None)
    assert await call(by_name, target.url("/name").replace("127.0.0.1", "localhost")) == (
        True,
        None,
    )
    assert [d.path for d in target.deliveries] == ["/network", "/name"]


async def test_a_refused_call_is_a_failed_run_that_says_why(
    tmp_path: Path, target: RecordingTarget
) -> None:
    scheduler = make_scheduler(tmp_path, block_private_networks=True)
    await scheduler.start()
    try:
        await scheduler.create_job("guarded", spec(target.url("/x"), soon(0.1)))
        runs = await wait_runs(scheduler, "guarded", lambda r: bool(r) and r[0].finished_us)
    finally:
        await scheduler.stop()
    assert runs[0].status is RunStatus.FAILED
    assert LOOPBACK_REFUSED in (runs[0].error or "")
    assert target.deliveries == []
