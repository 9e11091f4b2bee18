"""Job documents in files, for ``kairos apply`` and ``kairos jobs export``.

A file is YAML (``.yaml``, ``.yml``) or JSON (``.json``) and holds ``{"jobs": [...]}`` (what
``kairos jobs export`` writes), a list of jobs, or one job. A job is what ``GET /jobs/{id}``
shows (its read-only fields are ignored), with its ``id``. A directory stands for the files
with those suffixes in it and under it, in name order.

Every problem of every file is found before anything is sent, each named by file, job and
field, so that a set of files is applied whole or not at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kairos.api.schemas import JOB_READ_ONLY, JobCreate, JobOut
from kairos.client import Problem

__all__ = [
    "SUFFIXES",
    "Documents",
    "Source",
    "dump_documents",
    "export_document",
    "load_documents",
]

SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class Source:
    """Where a job document was read: its file and its place in the file's list."""

    file: Path
    index: int
    job_id: str | None

    def name(self, field: str = "") -> str:
        """``file: job 'id': field``, or the job's place in the file when it has no id."""
        job = f"job {self.job_id!r}" if self.job_id else f"job #{self.index + 1}"
        return f"{self.file}: {job}" + (f": {field}" if field else "")


@dataclass
class Documents:
    """The job documents of some files, in order, with where each came from; ``problems``:
    everything wrong with them, each line naming its file (and job and field)."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def where(self, problem: Problem) -> str:
        """A problem the server found in the request built from these documents (its field
        ``jobs.<i>.<field>``), named by file, job and field."""
        head, _, rest = problem.field.partition(".")
        index, _, inner = rest.partition(".")
        if head == "jobs" and index.isdigit() and int(index) < len(self.sources):
            return f"{self.sources[int(index)].name(inner)}: {problem.message}"
        return f"{problem.field}: {problem.message}" if problem.field else problem.message


def load_documents(paths: Iterable[Path]) -> Documents:
    """Read and check the job documents of ``paths`` (files or directories)."""
    documents = Documents()
    for path in paths:
        for file in _files(path, documents.problems):
            documents.files.append(file)
            _read_file(file, documents)
    _check_ids(documents)
    return documents


def _files(path: Path, problems: list[str]) -> list[Path]:
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        if not found:
            problems.append(f"{path}: no {', '.join(SUFFIXES)} files in this directory")
        return found
    if not path.exists():
        problems.append(f"{path}: no such file or directory")
        return []
    if path.suffix not in SUFFIXES:
        problems.append(f"{path}: not a job document file (use {', '.join(SUFFIXES)})")
        return []
    return [path]


def _read_file(file: Path, documents: Documents) -> None:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        documents.problems.append(f"{file}: cannot read it: {exc}")
        return
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if file.suffix == ".json" else "YAML"
        documents.problems.append(f"{file}: not valid {kind}: {_parse_error(exc)}")
        return
    jobs = _jobs_of(data)
    if jobs is None:
        documents.problems.append(
            f'{file}: expected {{"jobs": [...]}}, a list of jobs or one job (with its "id")'
        )
        return
    for index, job in enumerate(jobs):
        _add_job(file, index, job, documents)


def _parse_error(exc: Exception) -> str:
    """One line: what is wrong and where (YAML's own message spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _jobs_of(data: Any) -> list[Any] | None:
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and set(data) == {"jobs"} and isinstance(data["jobs"], list):
        return list(data["jobs"])
    if isinstance(data, dict) and "id" in data:
        return [data]
    return None


def _add_job(file: Path, index: int, job: Any, documents: Documents) -> None:
    job_id = job.get("id") if isinstance(job, dict) else None
    source = Source(file, index, job_id if isinstance(job_id, str) else None)
    if not isinstance(job, dict):
        documents.problems.append(f"{source.name()}: expected a job (a mapping of its fields)")
        return
    try:
        JobCreate.model_validate(job)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            documents.problems.append(f"{source.name(where)}: {_message(error)}")
        return
    documents.jobs.append(job)
    documents.sources.append(source)


def _message(error: Mapping[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    return str(error["msg"])


def _check_ids(documents: Documents) -> None:
    first: dict[str, Source] = {}
    for source in documents.sources:
        assert source.job_id is not None  # validated: every job has its id
        seen = first.setdefault(source.job_id, source)
        if seen is not source:
            documents.problems.append(
                f"{source.name('id')}: duplicate id, also in {seen.file} (job #{seen.index + 1})"
            )


def export_document(job: JobOut) -> dict[str, Any]:
    """A job as a document: what ``GET /jobs/{id}`` shows less its read-only fields."""
    return job.model_dump(mode="json", exclude=set(JOB_READ_ONLY))


def dump_documents(jobs: Sequence[dict[str, Any]], fmt: str) -> str:
    """``{"jobs": [...]}`` as YAML or JSON text, keys in the API's order."""
    if fmt == "json":
        return json.dumps({"jobs": list(jobs)}, indent=2, ensure_ascii=False) + "\n"
    text: str = yaml.safe_dump(
        {"jobs": list(jobs)}, sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    return text
