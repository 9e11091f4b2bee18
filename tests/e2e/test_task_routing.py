"""A mixed cluster on PostgreSQL: python jobs run only on the nodes that have their task, and
wait, due, while none is alive (``kairos serve --tasks``)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.server import KairosProcess, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

TASKS = """
import json
import os

from kairos.tasks import RunContext, TaskRegistry

tasks = TaskRegistry()


@tasks.task()
def mark(name: str, ctx: RunContext) -> None:
    with open(os.environ["MARKS"], "a") as out:
        out.write(json.dumps([name, ctx.run_id, os.getpid()]) + "\\n")
"""


def with_tasks(tmp_path: Path) -> dict[str, str | None]:
    (tmp_path / "site_tasks.py").write_text(TASKS)
    return {
        "PYTHONPATH": str(tmp_path),
        "KAIROS_TASKS": "site_tasks",
        "MARKS": str(tmp_path / "marks.jsonl"),
    }


def marks(tmp_path: Path) -> list[list[object]]:
    path = tmp_path / "marks.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_only_the_node_with_the_task_runs_it_and_the_job_waits_while_none_is_alive(
    database: str, tmp_path: Path
) -> None:
    plain = KairosProcess(database, log_path=tmp_path / "plain.log").start()
    try:
        due = datetime.now(UTC) + timedelta(seconds=1)
        body = {
            "trigger": {"type": "date", "run_date": due.isoformat()},
            "target": {"type": "python", "task": "mark", "kwargs": {"name": "once"}},
            "misfire_grace_time": 600,
        }
        with plain.client() as api:
            assert api.put("/jobs/marker", json=body).status_code == 201
            wait_until(lambda: datetime.now(UTC) > due + timedelta(seconds=1), 10, what="due")
            shown = api.get("/jobs/marker").json()
            assert shown["waiting_for_task"] == "mark"
            assert api.get("/runs", params={"job_id": "marker"}).json()["items"] == []
        worker = KairosProcess(
            database, env=with_tasks(tmp_path), log_path=tmp_path / "worker.log"
        ).start()
        try:
            wait_until(lambda: len(marks(tmp_path)) == 1, 20, what="the task to run")
            [[name, _, pid]] = marks(tmp_path)
            assert (name, pid) == ("once", worker.proc.pid if worker.proc else None)
            with plain.client() as api:
                [run] = api.get("/runs", params={"job_id": "marker"}).json()["items"]
                assert run["status"] == "succeeded"
                assert datetime.fromisoformat(run["scheduled_for"]) == due
        finally:
            worker.stop()
    finally:
        plain.stop()


def test_a_task_module_that_cannot_be_imported_stops_the_start_in_one_line(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kairos",
            "serve",
            "--db",
            f"sqlite:///{tmp_path}/k.db",
            "--tasks",
            "no_such_tasks_module",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "task 'no_such_tasks_module': cannot import the module" in result.stderr
