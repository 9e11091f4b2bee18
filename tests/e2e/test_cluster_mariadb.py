"""Three ``kairos serve`` replicas on one MariaDB database: exactly once, SIGKILL, an outage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support import mariadb
from tests.support.cluster import (
    TICKS,
    burst_fires_once_across_three_replicas,
    duplicates,
    readyz,
    sigkill_of_a_replica_loses_no_fire,
    wait_covered,
)
from tests.support.server import KairosProcess, TargetProcess, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.mariadb]


@pytest.fixture
def database() -> Iterator[str]:
    """A new database on the local MariaDB server, dropped afterwards."""
    mariadb.require_mariadb()
    url = mariadb.create_database()
    yield url
    mariadb.drop_database(url)


@pytest.fixture
def replicas(database: str, tmp_path: Path) -> Iterator[list[KairosProcess]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(KairosProcess(database, log_path=tmp_path / f"node{i}.log"))
            for i in range(3)
        ]


def test_a_thousand_jobs_due_at_once_fire_exactly_once_across_three_replicas(
    database: str, target: TargetProcess, tmp_path: Path
) -> None:
    # The three claim the same rows at once, where InnoDB's locks may deadlock.
    burst_fires_once_across_three_replicas(database, target, tmp_path)


def test_sigkill_of_a_replica_loses_no_fire_and_duplicates_none(
    replicas: list[KairosProcess], target: TargetProcess
) -> None:
    sigkill_of_a_replica_loses_no_fire(replicas, target)


def test_an_outage_pauses_claims_and_they_resume_by_themselves(
    target: TargetProcess, tmp_path: Path
) -> None:
    with mariadb.ThrowawayMariaDb() as server, ExitStack() as stack:
        nodes = [
            stack.enter_context(KairosProcess(server.url, log_path=tmp_path / f"node{i}.log"))
            for i in range(3)
        ]
        jobs = [f"tick-{i}" for i in range(5)]
        with nodes[0].client() as api:
            for job_id in jobs:
                api.put(f"/jobs/{job_id}", json=TICKS | {"target": {"url": target.url("/tick")}})
        wait_until(lambda: len(target.deliveries("/tick")) >= 10, 20, what="ticks before")
        down_at = datetime.now(UTC) - timedelta(seconds=1)  # what was claimed last, too
        server.stop()
        try:
            for node in nodes:
                wait_until(lambda n=node: readyz(n) == 503, 20, what="not ready while it is down")
        finally:
            server.start()
        back_at = datetime.now(UTC)
        for node in nodes:
            wait_until(lambda n=node: readyz(n) == 200, 30, what="every replica ready again")
        outage = (down_at, datetime.now(UTC))
        wait_covered(target, jobs, back_at + timedelta(seconds=5), nodes[0], outage=outage)
    assert duplicates(target.deliveries("/tick")) == []
