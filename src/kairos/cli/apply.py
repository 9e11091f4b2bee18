"""``kairos jobs export`` and ``kairos apply``: jobs as code. Export writes the server's jobs
as documents; apply makes the server's jobs what the documents say, in one transaction, and
shows what it changes (``--dry-run``: only shows)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, NoReturn

import typer

from kairos.api.schemas import JobApplyOut
from kairos.cli.client import DEFAULT_URL, Token, Url, connect
from kairos.cli.common import err, fail, out
from kairos.cli.documents import dump_documents, export_document, load_documents
from kairos.client import Invalid

__all__ = ["apply_documents", "export_jobs", "plan_lines"]

Format = Literal["yaml", "json"]


def export_jobs(
    tag: Annotated[str | None, typer.Option(help="Only the jobs with this tag")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout)")
    ] = None,
    fmt: Annotated[
        Format | None,
        typer.Option("--format", help="yaml or json (default: the file's suffix, else yaml)"),
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Write every job (or a tag's) as documents that `kairos apply -f` reads back, sorted
    by id."""
    with connect(url, token) as api:
        jobs = [export_document(job) for job in api.list_jobs(tag=tag, page_size=1000)]
    chosen: Format = fmt or ("json" if output is not None and output.suffix == ".json" else "yaml")
    text = dump_documents(sorted(jobs, key=lambda job: str(job["id"])), chosen)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}", code=2)
    err.print(f"{len(jobs)} jobs written to {output}", highlight=False)


def apply_documents(
    files: Annotated[
        list[Path],
        typer.Option(
            "--filename", "-f", help="A .yaml, .yml or .json file, or a directory (repeatable)"
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would change; write nothing")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Delete the jobs --selector picks that no document names"),
    ] = False,
    selector: Annotated[
        str | None, typer.Option("--selector", "-l", help="tag=T: the jobs these files own")
    ] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Make the server's jobs what the files say, all or nothing, and show what changed:
    created, changed (with the fields), unchanged and, with --prune, deleted."""
    if prune and selector is None:
        fail("--prune deletes the jobs a --selector picks: give one, e.g. --selector tag=T", 2)
    documents = load_documents(files)
    if documents.problems:
        _refuse(documents.problems)
    with connect(url, token) as api:
        try:
            plan = api.apply_jobs(documents.jobs, dry_run=dry_run, prune=prune, selector=selector)
        except Invalid as exc:
            _refuse([documents.where(problem) for problem in exc.problems] or [exc.detail])
    for line in plan_lines(plan):
        out.print(line, highlight=False, markup=False)


def _refuse(problems: list[str]) -> NoReturn:
    for problem in problems:
        err.print(f"error: {problem}", highlight=False, markup=False)
    fail(f"nothing applied: {len(problems)} problem{'s' if len(problems) > 1 else ''}", code=2)


def plan_lines(plan: JobApplyOut) -> list[str]:
    """The plan as a person reads it: a line per job that changes, then the counts."""
    done = not plan.dry_run
    lines = [f"+ {job_id}" + (" created" if done else " (create)") for job_id in plan.created]
    lines += [
        f"~ {job_id}" + (" changed: " if done else " (change): ") + ", ".join(fields)
        for job_id, fields in plan.changed.items()
    ]
    lines += [f"- {job_id}" + (" deleted" if done else " (delete)") for job_id in plan.deleted]
    counts = (
        f"{len(plan.created)} {'created' if done else 'to create'},"
        f" {len(plan.changed)} {'changed' if done else 'to change'},"
        f" {len(plan.deleted)} {'deleted' if done else 'to delete'},"
        f" {len(plan.unchanged)} unchanged"
    )
    lines.append(f"Applied: {counts}." if done else f"Dry run: {counts}; nothing written.")
    return lines
