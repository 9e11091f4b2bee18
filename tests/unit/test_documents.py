"""Job documents read from files for ``kairos apply``: the shapes a file may hold, and every
problem of every file named by file, job and field before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kairos.api.schemas import JobApplyOut
from kairos.cli.apply import plan_lines
from kairos.cli.documents import dump_documents, load_documents
from kairos.client import Problem


def job(job_id: str, **extra: Any) -> dict[str, Any]:
    trigger = {"type": "cron", "expression": "0 2 * * *"}
    return {"id": job_id, "trigger": trigger, "target": {"url": "http://127.0.0.1:9/"}} | extra


def write(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data) if path.suffix == ".json" else dump_documents(data, "yaml"))
    return path


@pytest.mark.parametrize(
    "content",
    [
        {"jobs": [job("a"), job("b")]},
        [job("a"), job("b")],
    ],
)
def test_a_file_holds_jobs_under_jobs_or_as_a_list(tmp_path: Path, content: Any) -> None:
    file = tmp_path / "jobs.json"
    file.write_text(json.dumps(content))
    documents = load_documents([file])
    assert documents.problems == []
    assert [j["id"] for j in documents.jobs] == ["a", "b"]


def test_a_file_may_hold_one_job(tmp_path: Path) -> None:
    file = tmp_path / "one.yaml"
    file.write_text("id: solo\ntrigger: {type: interval, minutes: 5}\ntarget: {url: 'http://h/'}\n")
    documents = load_documents([file])
    assert (documents.problems, [j["id"] for j in documents.jobs]) == ([], ["solo"])


def test_a_directory_is_its_yaml_and_json_files_in_name_order(tmp_path: Path) -> None:
    write(tmp_path / "b.yaml", [job("from-b")])
    write(tmp_path / "a.json", [job("from-a")])
    write(tmp_path / "sub" / "c.yml", [job("from-c")])
    (tmp_path / "notes.txt").write_text("not a job")
    documents = load_documents([tmp_path])
    assert documents.problems == []
    assert [j["id"] for j in documents.jobs] == ["from-a", "from-b", "from-c"]


def test_every_problem_of_every_file_is_named(tmp_path: Path) -> None:
    first = write(tmp_path / "first.yaml", [job("a", colour="blue"), job("b")])
    second = write(tmp_path / "second.json", [job("b"), job("c", trigger={"type": "cron"})])
    broken = tmp_path / "broken.yaml"
    broken.write_text("jobs: [\n  - id: x\n")
    not_json = tmp_path / "not.json"
    not_json.write_text("{id: nope}")
    documents = load_documents([first, second, broken, not_json])
    assert documents.problems[0] == f"{first}: job 'a': colour: unknown field"
    assert documents.problems[1].startswith(f"{second}: job 'c': trigger.cron")
    assert documents.problems[2].startswith(f"{broken}: not valid YAML: ")
    assert "(line 2, column 3)" in documents.problems[2]
    assert documents.problems[3].startswith(f"{not_json}: not valid JSON: ")
    assert documents.problems[4] == (
        f"{second}: job 'b': id: duplicate id, also in {first} (job #2)"
    )
    assert len(documents.problems) == 5


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("x.toml", "a = 1", "not a job document file"),
        ("x.yaml", "just a string", 'expected {"jobs": [...]}'),
        ("x.yaml", "- 3\n", "job #1: expected a job"),
        (
            "x.yaml",
            "- trigger: {type: date, run_date: '2030-01-01T00:00:00Z'}\n  target: {url: 'http://h/'}\n",
            "job #1: id: Field required",
        ),
    ],
)
def test_a_file_that_holds_no_jobs_is_refused(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    file = tmp_path / name
    file.write_text(text)
    [found] = load_documents([file]).problems
    assert found.startswith(f"{file}: ")
    assert problem in found


def test_a_missing_path_or_an_empty_directory_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    problems = load_documents([tmp_path / "nowhere.yaml", tmp_path / "empty"]).problems
    assert problems == [
        f"{tmp_path / 'nowhere.yaml'}: no such file or directory",
        f"{tmp_path / 'empty'}: no .yaml, .yml, .json files in this directory",
    ]


def test_a_servers_problem_is_named_by_file_and_job(tmp_path: Path) -> None:
    file = write(tmp_path / "jobs.yaml", [job("a"), job("b")])
    documents = load_documents([file])
    problem = Problem("jobs.1.target.headers.X", "${env:NOPE}: NOPE is not set")
    assert documents.where(problem) == (
        f"{file}: job 'b': target.headers.X: ${{env:NOPE}}: NOPE is not set"
    )
    assert documents.where(Problem("selector", "bad")) == "selector: bad"


def test_read_only_fields_of_an_exported_job_are_accepted(tmp_path: Path) -> None:
    shown = job("a", state="scheduled", next_run_time=None, created_at="2026-01-01T00:00:00Z")
    assert load_documents([write(tmp_path / "a.json", [shown])]).problems == []


def test_the_plan_reads_as_a_diff() -> None:
    plan = JobApplyOut(
        dry_run=True,
        created=["n"],
        changed={"c": ["target", "trigger"]},
        unchanged=["u"],
        deleted=["d"],
    )
    assert plan_lines(plan) == [
        "+ n (create)",
        "~ c (change): target, trigger",
        "- d (delete)",
        "Dry run: 1 to create, 1 to change, 1 to delete, 1 unchanged; nothing written.",
    ]
    done = plan.model_copy(update={"dry_run": False})
    assert plan_lines(done)[-1] == "Applied: 1 created, 1 changed, 1 deleted, 1 unchanged."
    assert plan_lines(done)[1] == "~ c changed: target, trigger"
