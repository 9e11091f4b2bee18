"""``kairos jobs ...`` and ``kairos runs``: the jobs and runs of a running server, through
``kairos.client``."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import typer

from kairos.api.schemas import MAX_BATCH, JobOut, RunOut
from kairos.cli.apply import export_jobs
from kairos.cli.client import DEFAULT_URL, Token, Url, connect
from kairos.cli.common import fail, out, print_json, print_table, seconds

__all__ = ["cancel_command", "jobs_app", "runs_command"]

jobs_app = typer.Typer(help="Manage the jobs of a running server.", no_args_is_help=True)
jobs_app.command("export")(export_jobs)

AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON, for scripts")]


@jobs_app.command("list")
def _jobs_list(
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page")] = False,
) -> None:
    """List jobs."""
    with connect(url, token) as api:
        if all_pages:
            jobs, cursor = list(api.list_jobs(page_size=limit)), None
        else:
            page = api.job_page(limit=limit)
            jobs, cursor = page.items, page.next_cursor
    if as_json:
        print_json({"items": [_json(job) for job in jobs], "next_cursor": cursor})
        return
    rows = [
        [
            job.id,
            job.state,
            _trigger_text(job.trigger.model_dump(mode="json")),
            job.timezone,
            _json(job)["next_run_time"] or "-",
            _target_text(job.target.model_dump(mode="json")),
        ]
        for job in jobs
    ]
    headers = ["id", "state", "trigger", "timezone", "next run", "target"]
    print_table(headers, rows, whole={"id"})


@jobs_app.command("get")
def _jobs_get(job_id: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Show one job as JSON."""
    with connect(url, token) as api:
        print_json(_json(api.get_job(job_id)))


@jobs_app.command("put")
def _jobs_put(
    job_id: str,
    cron: Annotated[str | None, typer.Option(help="Crontab expression")] = None,
    every: Annotated[str | None, typer.Option(help="Interval, e.g. 30s, 5m, 1h30m, 1d")] = None,
    at: Annotated[str | None, typer.Option(help="One-off ISO 8601 date")] = None,
    file: Annotated[Path | None, typer.Option(help="A full job spec as JSON")] = None,
    target: Annotated[str | None, typer.Option(help="URL to call")] = None,
    method: Annotated[str | None, typer.Option(help="HTTP method (default POST)")] = None,
    header: Annotated[list[str] | None, typer.Option(help="'Name: value', repeatable")] = None,
    body: Annotated[str | None, typer.Option(help="Request body")] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="IANA time zone")] = None,
    max_instances: Annotated[int | None, typer.Option()] = None,
    misfire_grace_time: Annotated[float | None, typer.Option()] = None,
    no_coalesce: Annotated[bool, typer.Option("--no-coalesce")] = False,
    paused: Annotated[bool, typer.Option("--paused")] = False,
    description: Annotated[str | None, typer.Option()] = None,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Create or completely replace a job."""
    spec: dict[str, Any] = _read_json(file) if file else {}
    if not isinstance(spec, dict):
        fail(f"{file}: expected a JSON object (a job spec)", code=2)
    chosen = [flag for flag in (cron, every, at) if flag is not None]
    if len(chosen) > 1:
        fail("give one of --cron, --every, --at", code=2)
    if cron is not None:
        spec["trigger"] = {"type": "cron", "expression": cron}
    elif every is not None:
        spec["trigger"] = {"type": "interval", "seconds": seconds(every, "--every")}
    elif at is not None:
        spec["trigger"] = {"type": "date", "run_date": at}
    if "trigger" not in spec:
        fail("a job needs a schedule: --cron, --every, --at or --file", code=2)
    target_spec = dict(spec.get("target", {}))
    for key, value in (("url", target), ("method", method), ("body", body)):
        if value is not None:
            target_spec[key] = value
    if header:
        target_spec["headers"] = target_spec.get("headers", {}) | _headers(header)
    if "url" not in target_spec and "task" not in target_spec:
        fail("a job needs a target: --target URL (or a target in --file)", code=2)
    spec["target"] = target_spec
    extras = {
        "timezone": tz,
        "max_instances": max_instances,
        "misfire_grace_time": misfire_grace_time,
        "description": description,
        "coalesce": False if no_coalesce else None,
        "paused": True if paused else None,
    }
    spec |= {k: v for k, v in extras.items() if v is not None}
    with connect(url, token) as api:
        job, created = api.put_job(job_id, spec)
    if as_json:
        print_json(_json(job))
        return
    verb = "created" if created else "replaced"
    next_run = _json(job)["next_run_time"] or "-"
    out.print(f"Job [bold]{job_id}[/bold] {verb}; next run: {next_run}")


@jobs_app.command("load")
def _jobs_load(
    file: Annotated[
        Path,
        typer.Argument(
            help='JSON: [{"id": ..., job}, ...], {"jobs": [...]}, or what jobs list --json prints'
        ),
    ],
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Create or replace many jobs at once, 10,000 per request (each request all or nothing).
    Jobs as the API shows them are taken back as they are (their read-only fields ignored)."""
    data = _read_json(file)
    jobs = data.get("jobs", data.get("items")) if isinstance(data, dict) else data
    if not isinstance(jobs, list) or not jobs:
        fail(
            f'{file}: expected a non-empty list of jobs, {{"jobs": [...]}} or {{"items": [...]}}',
            code=2,
        )
    created = 0
    with connect(url, token) as api:
        chunks = iter(jobs)
        start = 0
        while chunk := list(islice(chunks, MAX_BATCH)):
            if start:
                out.print(f"{start:,} jobs loaded; sending jobs {start:,} and on")
            created += api.put_jobs(chunk).created
            start += len(chunk)
    out.print(f"{len(jobs):,} jobs loaded: {created:,} created, {len(jobs) - created:,} replaced")


@jobs_app.command("delete")
def _jobs_delete(job_id: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Delete a job (its run history stays)."""
    with connect(url, token) as api:
        api.delete_job(job_id)
    out.print(f"Job [bold]{job_id}[/bold] deleted")


@jobs_app.command("pause")
def _jobs_pause(job_id: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Pause a job."""
    with connect(url, token) as api:
        job = api.pause_job(job_id)
    out.print(f"Job [bold]{job_id}[/bold] is {job.state}")


@jobs_app.command("resume")
def _jobs_resume(job_id: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Resume a paused job."""
    with connect(url, token) as api:
        job = api.resume_job(job_id)
    next_run = _json(job)["next_run_time"]
    out.print(f"Job [bold]{job_id}[/bold] is {job.state}; next run: {next_run}")


@jobs_app.command("run")
def _jobs_run(
    job_id: str, url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False
) -> None:
    """Start one run now, outside the schedule."""
    with connect(url, token) as api:
        run = api.run_job(job_id)
    if as_json:
        print_json(_json(run))
        return
    out.print(f"Run {run.id} of [bold]{job_id}[/bold] is {run.status}")


def runs_command(
    job: Annotated[str | None, typer.Option(help="Only this job's runs")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List runs, newest first."""
    with connect(url, token) as api:
        page = api.run_page(limit=limit, job_id=job, status=status)
    if as_json:
        print_json({"items": [_json(run) for run in page.items], "next_cursor": page.next_cursor})
        return
    rows = [_run_row(_json(run)) for run in page.items]
    headers = ["id", "job", "scheduled for", "status", "attempt", "http", "ms", "error"]
    print_table(headers, rows, whole={"id", "job"})


def cancel_command(
    run_id: Annotated[int, typer.Argument(help="The run to stop")],
    url: Url = DEFAULT_URL,
    token: Token = None,
) -> None:
    """Stop a queued or running run, on whichever replica holds it; it is not retried."""
    with connect(url, token) as api:
        run = api.cancel_run(run_id)
    out.print(f"Run {run.id} of [bold]{run.job_id}[/bold] is {run.status}")


def _run_row(run: dict[str, Any]) -> list[str]:
    return [
        str(run["id"]),
        run["job_id"],
        run["scheduled_for"],
        run["status"],
        str(run["attempt"]),
        str(run["http_status"] or "-"),
        "-" if run["duration_ms"] is None else f"{run['duration_ms']:.1f}",
        (run["error"] or "")[:60],
    ]


def _json(model: JobOut | RunOut) -> dict[str, Any]:
    """``model`` as the API's JSON shows it."""
    return model.model_dump(mode="json")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", code=2)
    except ValueError as exc:
        fail(f"{path} is not valid JSON: {exc}", code=2)


def _headers(pairs: list[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep:
            fail(f"--header: expected 'Name: value', got {pair!r}", code=2)
        headers[name.strip()] = value.strip()
    return headers


def _trigger_text(trigger: dict[str, Any]) -> str:
    kind = trigger["type"]
    if kind == "cron":
        if trigger.get("expression"):
            return f"cron {trigger['expression']}"
        fields = {k: v for k, v in trigger.items() if k != "type" and v is not None}
        return "cron " + " ".join(f"{k}={v}" for k, v in fields.items())
    if kind == "interval":
        units = ("weeks", "days", "hours", "minutes", "seconds")
        return "every " + " ".join(f"{trigger[u]:g}{u[0]}" for u in units if trigger.get(u))
    return f"once at {trigger['run_date']}"


def _target_text(target: dict[str, Any]) -> str:
    if target.get("type") == "python":
        return f"python {target['task']}"
    return str(target["url"])
