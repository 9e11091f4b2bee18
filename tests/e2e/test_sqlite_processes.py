"""Three ``kairos serve`` processes on one SQLite file, as the workers of one web server are:
every fire once, a SIGKILLed process's runs taken over at once, no "database is locked"."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import duplicates, node_id_of, wait_covered
from tests.support.server import KairosProcess, TargetProcess, header, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[KairosProcess]]:
    url = f"sqlite:///{tmp_path}/kairos.db"
    with ExitStack() as stack:
        yield [
            stack.enter_context(KairosProcess(url, log_path=tmp_path / f"node{i}.log"))
            for i in range(3)
        ]


def test_a_thousand_jobs_due_at_once_fire_once_and_the_api_never_sees_a_locked_database(
    processes: list[KairosProcess], target: TargetProcess
) -> None:
    due = datetime.now(UTC) + timedelta(seconds=6)
    body = {
        "trigger": {"type": "date", "run_date": due.isoformat()},
        "target": {"url": target.url("/burst")},
        "misfire_grace_time": 300,
    }
    batch = {"jobs": [{"id": f"burst-{i}", **body} for i in range(1000)]}
    with processes[0].client() as api:
        assert api.post("/jobs:batch", json=batch).json() == {"created": 1000, "replaced": 0}
    assert datetime.now(UTC) < due, "loading took longer than the margin"

    # While the burst is claimed and recorded, every process takes API writes and reads.
    answers: list[int] = []
    done = threading.Event()

    def hammer(process: KairosProcess, n: int) -> None:
        with process.client() as api:
            i = 0
            while not done.is_set():
                job = {"trigger": {"type": "interval", "seconds": 3600}, "target": body["target"]}
                answers.append(api.put(f"/jobs/side-{n}-{i % 20}", json=job).status_code)
                answers.append(api.get("/runs", params={"limit": 20}).status_code)
                i += 1

    workers = [
        threading.Thread(target=hammer, args=(process, n)) for n, process in enumerate(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: len(target.deliveries("/burst")) >= 1000, 60, what="1,000 deliveries")
    finally:
        done.set()
        for worker in workers:
            worker.join()
    deliveries = target.deliveries("/burst")
    assert duplicates(deliveries) == []
    assert {header(d, "X-Kairos-Job-Id") for d in deliveries} == {f"burst-{i}" for i in range(1000)}
    assert answers
    assert set(answers) <= {200, 201}, sorted(set(answers))


def test_a_sigkilled_process_is_taken_over_before_its_lease_and_no_fire_is_lost(
    processes: list[KairosProcess], target: TargetProcess
) -> None:
    jobs = [f"tick-{i}" for i in range(10)]
    body = {
        "trigger": {"type": "interval", "seconds": 1},
        "target": {"url": target.url("/tick")},
        "coalesce": False,
        "misfire_grace_time": 120,
    }
    with processes[0].client() as api:
        for job_id in jobs:
            assert api.put(f"/jobs/{job_id}", json=body).status_code == 201
    wait_until(lambda: len(target.deliveries("/tick")) >= 30, 30, what="ticks")
    victim = processes[2]
    victim_id = node_id_of(victim)
    victim.kill()
    killed_at = datetime.now(UTC)

    def gone() -> bool:
        with processes[0].client() as api:
            return victim_id not in {n["id"] for n in api.get("/cluster").json()["nodes"]}

    # The lease is 10 s; the kernel's word that the process died comes with the next heartbeat.
    wait_until(gone, 6, what="the dead process to be taken over before its lease runs out")
    wait_covered(target, jobs, killed_at + timedelta(seconds=8), processes[0])
    assert duplicates(target.deliveries("/tick")) == []


def test_processes_find_each_other_on_the_cluster_page(processes: list[KairosProcess]) -> None:
    ids = {node_id_of(process) for process in processes}
    with processes[0].client() as api:
        assert {node["id"] for node in api.get("/cluster").json()["nodes"]} == ids
    assert httpx.get(f"{processes[1].base_url}/readyz", timeout=5).status_code == 200
