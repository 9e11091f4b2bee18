"""Three ``kairos serve`` replicas on one PostgreSQL database: exactly once, SIGKILL, restarts."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import (
    burst_fires_once_across_three_replicas,
    duplicates,
    readyz,
    sigkill_of_a_replica_loses_no_fire,
    wait_covered,
)
from tests.support.postgres import (
    ThrowawayPostgres,
    create_database,
    drop_database,
    require_postgres,
)
from tests.support.server import (
    Command,
    Forker,
    KairosProcess,
    TargetProcess,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_a_thousand_jobs_due_at_once_fire_exactly_once_across_three_replicas(
    database: str, target: TargetProcess, tmp_path: Path
) -> None:
    burst_fires_once_across_three_replicas(database, target, tmp_path)


def test_sigkill_of_a_replica_loses_no_fire_and_duplicates_none(
    replicas: list[KairosProcess], target: TargetProcess
) -> None:
    sigkill_of_a_replica_loses_no_fire(replicas, target)


def test_a_postgresql_outage_is_survived_without_duplicates(
    target: TargetProcess, tmp_path: Path
) -> None:
    with ThrowawayPostgres() as server, ExitStack() as stack:
        replicas = [
            stack.enter_context(KairosProcess(server.url, log_path=tmp_path / f"node{i}.log"))
            for i in range(3)
        ]
        body = {
            "trigger": {"type": "interval", "seconds": 1},
            "target": {"url": target.url("/tick")},
            "coalesce": False,
            "misfire_grace_time": 120,
        }
        with replicas[0].client() as api:
            for i in range(5):
                api.put(f"/jobs/tick-{i}", json=body)
        wait_until(
            lambda: len(target.deliveries("/tick")) >= 10, 20, what="ticks before the outage"
        )
        down_at = datetime.now(UTC) - timedelta(seconds=1)  # what was claimed last, too
        server.stop()
        try:
            for replica in replicas:
                wait_until(
                    lambda r=replica: readyz(r) == 503, 20, what="not ready while it is down"
                )
        finally:
            server.start()
        back_at = datetime.now(UTC)
        for replica in replicas:
            wait_until(lambda r=replica: readyz(r) == 200, 30, what="every replica ready again")
        jobs = [f"tick-{i}" for i in range(5)]
        horizon = back_at + timedelta(seconds=5)
        wait_covered(target, jobs, horizon, replicas[0], outage=(down_at, datetime.now(UTC)))
    assert duplicates(target.deliveries("/tick")) == []


def test_max_instances_holds_across_replicas(
    replicas: list[KairosProcess], target: TargetProcess
) -> None:
    body = {
        "trigger": {"type": "interval", "seconds": 0.2},
        "target": {"url": target.url("/slow?delay=1.5")},
        "max_instances": 1,
    }
    with replicas[0].client() as api:
        api.put("/jobs/single", json=body)
    wait_until(lambda: len(target.deliveries("/slow")) >= 3, 30, what="three slow calls")
    starts = sorted(d["received_us"] for d in target.deliveries("/slow"))
    # One call at a time: each starts only after the previous one's 1.5 s are over.
    assert min(b - a for a, b in pairwise(starts)) >= 1_500_000
    with replicas[1].client() as api:
        runs = api.get("/jobs/single/runs", params={"limit": 1000}).json()["items"]
    assert any(r["status"] == "skipped" for r in runs)
    assert len({r["node_id"] for r in runs}) >= 2, "only one replica ever claimed the job"


COLD_START_ROUNDS = 20
PASSWORD = "a long enough password"


def test_replicas_starting_at_once_on_a_new_database_share_one_key_and_one_admin_token(
    tmp_path: Path,
) -> None:
    require_postgres()
    with Forker() as forker:
        for round_no in range(COLD_START_ROUNDS):
            database = create_database()
            try:
                _cold_start(forker, database, tmp_path / f"round{round_no}")
            finally:
                drop_database(database)


def _cold_start(forker: Forker, database: str, logs: Path) -> None:
    """Five replicas and ``kairos users add`` released at the same instant on an empty
    database, with neither a signing key nor an admin token configured: between them they must
    create the schema, one signing key and one admin token, and every replica come up."""
    logs.mkdir()
    unset: dict[str, str | None] = {"KAIROS_JWT_SECRET": None, "KAIROS_ADMIN_TOKEN": None}
    env = unset | {"KAIROS_HTTP_WORKERS": "0"}
    nodes = [
        KairosProcess(database, token=None, env=env, log_path=logs / f"node{i}.log")
        for i in range(5)
    ]
    add_user = Command(
        ["users", "add", "ann", "--password-stdin", "--db", database],
        nodes[0].command().env,
        logs / "users-add.log",
        stdin=PASSWORD,
    )
    with ExitStack() as stack:
        *servers, adding = forker.run([node.command() for node in nodes] + [add_user])
        for node, server in zip(nodes, servers, strict=True):
            node.launch(server)
        stack.callback(_stop_together, nodes)
        for node in nodes:
            node.wait_ready(30)
        assert adding.wait(30) == 0, (logs / "users-add.log").read_text()

        printed = [_printed_admin_token(node) for node in nodes]
        tokens = {token for token in printed if token is not None}
        assert len(tokens) == 1, f"admin tokens printed: {printed}"
        form = {"username": "ann", "password": PASSWORD}
        signed = httpx.post(f"{nodes[0].base_url}/auth/token", data=form, timeout=10)
        assert signed.status_code == 200, signed.text
        for bearer in (*tokens, signed.json()["access_token"]):
            for node in nodes:
                answer = httpx.get(
                    f"{node.base_url}/jobs", headers={"Authorization": f"Bearer {bearer}"}
                )
                assert answer.status_code == 200, (node.log_path, answer.text)


def _stop_together(nodes: list[KairosProcess]) -> None:
    for node in nodes:
        assert node.proc is not None
        node.proc.send_signal(signal.SIGTERM)
    for node in nodes:
        node.stop()


def _printed_admin_token(node: KairosProcess) -> str | None:
    assert node.log_path is not None
    text = node.log_path.read_text()
    if "stored hashed):" not in text:
        return None
    return text.split("stored hashed):")[1].split()[0]
