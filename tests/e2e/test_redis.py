"""``kairos serve`` on Redis: three replicas with one SIGKILLed, a Redis outage survived, and a
Redis restart that lost everything said so loudly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import (
    TICKS,
    duplicates,
    sigkill_of_a_replica_loses_no_fire,
    wait_covered,
)
from tests.support.redis import ThrowawayRedis, redis_store_url
from tests.support.server import KairosProcess, TargetProcess, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    async with redis_store_url() as url:
        yield url


@pytest.fixture
def redis_replicas(redis_url: str, tmp_path: Path) -> Iterator[list[KairosProcess]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(KairosProcess(redis_url, log_path=tmp_path / f"node{i}.log"))
            for i in range(3)
        ]


def test_sigkill_of_a_replica_on_redis_loses_no_fire_and_duplicates_none(
    redis_replicas: list[KairosProcess], target: TargetProcess
) -> None:
    sigkill_of_a_replica_loses_no_fire(redis_replicas, target)
    assert len(_fired_by(redis_replicas[0])) >= 2, "only one replica ever claimed"


def _fired_by(process: KairosProcess) -> set[str]:
    with process.client() as api:
        items = api.get("/runs", params={"limit": 1000}).json()["items"]
    return {run["node_id"] for run in items if run["node_id"]}


def _readyz(process: KairosProcess) -> tuple[int, str]:
    try:
        answer = httpx.get(f"{process.base_url}/readyz", timeout=2)
    except httpx.HTTPError as exc:
        return 0, str(exc)
    return answer.status_code, answer.json().get("detail", "")


def test_a_redis_outage_pauses_claims_and_they_resume_with_nothing_lost(
    target: TargetProcess, tmp_path: Path
) -> None:
    with ThrowawayRedis(tmp_path, appendonly=True) as server:
        node = KairosProcess(server.url, log_path=tmp_path / "node.log").start()
        try:
            with node.client() as api:
                api.put("/jobs/tick", json={**TICKS, "target": {"url": target.url("/tick")}})
            wait_until(lambda: len(target.deliveries("/tick")) >= 2, 30, what="ticks")
            server.stop()
            wait_until(lambda: _readyz(node)[0] == 503, 10, what="/readyz to say Redis is down")
            assert "cannot reach Redis" in _readyz(node)[1]
            down_at = datetime.now(UTC)
            server.start()
            wait_until(lambda: _readyz(node)[0] == 200, 20, what="/readyz to recover")
            # The fires due while Redis was down are made up (misfire grace), none twice.
            wait_covered(target, ["tick"], down_at + timedelta(seconds=3), node)
            assert duplicates(target.deliveries("/tick")) == []
        finally:
            node.stop()


def test_a_redis_restart_that_lost_the_data_is_said_loudly(tmp_path: Path) -> None:
    with ThrowawayRedis(tmp_path) as server:
        node = KairosProcess(server.url, log_path=tmp_path / "node.log").start()
        try:
            server.stop()
            server.start()  # no persistence: every key is gone
            wait_until(lambda: _readyz(node)[0] == 503, 15, what="/readyz to refuse")
            assert "is gone" in _readyz(node)[1]
            assert "Redis restarted without persistence" in _readyz(node)[1]

            def counted() -> bool:
                with node.client() as api:
                    return 'operation="heartbeat"' in api.get("/metrics").text

            wait_until(counted, 30, what="the refused heartbeat counted in the metrics")
            assert node.log_path is not None
            assert "ERROR kairos.store.redis: the Kairos data" in node.log_path.read_text()
            node.stop()
            assert "Application shutdown failed" not in node.log_path.read_text()
            assert "Application shutdown complete" in node.log_path.read_text()
        finally:
            node.stop()
