"""The ``kairos`` command: ``serve``, ``db upgrade``, offline ``preview``, ``users`` and ``keys``
(see ``kairos.cli.accounts``), and a client for a running server (``jobs``, ``runs``)."""

from __future__ import annotations

import gc
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from kairos import __version__, logs, triggers
from kairos.cli.accounts import keys_app, users_app
from kairos.cli.client import ApiClient, ApiError
from kairos.cli.common import (
    database_of,
    fail,
    on_store,
    out,
    print_json,
    print_table,
    seconds,
    sqlite_file,
)
from kairos.cli.secrets import secrets_app
from kairos.errors import InvalidField, KairosError
from kairos.models import CronTriggerSpec, parse_zone
from kairos.settings import Settings
from kairos.store import Store

__all__ = ["app", "main"]

app = typer.Typer(help="Kairos: a self-hosted, API-driven job scheduler.", no_args_is_help=True)
jobs_app = typer.Typer(help="Manage the jobs of a running server.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(secrets_app, name="secrets")

Url = Annotated[str, typer.Option("--url", envvar="KAIROS_URL", help="The server's base URL")]
Token = Annotated[str | None, typer.Option("--token", envvar="KAIROS_TOKEN", help="A bearer token")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON, for scripts")]
DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL or SQLite file [KAIROS_DATABASE_URL]")
]
DEFAULT_URL = "http://127.0.0.1:8000"


def main() -> None:
    app()


def _print_version(wanted: bool) -> None:
    if wanted:
        out.print(f"kairos {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Kairos: a self-hosted, API-driven job scheduler."""


# Server ------------------------------------------------------------------------------------------


def _import_tasks(modules: tuple[str, ...]) -> None:
    """Import the task modules now, so that one that cannot be is told in one line; from the
    working directory too, as ``python -m`` and uvicorn would."""
    from kairos.tasks import TaskRegistry

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        TaskRegistry.from_modules(modules)
    except KairosError as exc:
        fail(str(exc), code=2)


@app.command("serve")
def _serve(
    host: Annotated[str | None, typer.Option(help="Bind address [KAIROS_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [KAIROS_PORT]")] = None,
    db: DbOption = None,
    log_level: Annotated[str | None, typer.Option(help="Log level [KAIROS_LOG_LEVEL]")] = None,
    tasks: Annotated[
        str | None,
        typer.Option(help="Modules with python tasks, comma-separated [KAIROS_TASKS]"),
    ] = None,
) -> None:
    """Start the API and the scheduler in one process."""
    import uvicorn

    from kairos.api import create_app
    from kairos.api.server import ConnectionLimits, GuardedHttpProtocol, QuietServer, connection_cap
    from kairos.executors import default_http_workers

    flags: dict[str, Any] = {
        "host": host,
        "port": port,
        "database_url": db,
        "log_level": log_level,
        "tasks": tasks,
    }
    try:
        settings = Settings(**{k: v for k, v in flags.items() if v is not None})
        if settings.http_workers is None:
            settings = settings.model_copy(update={"http_workers": default_http_workers()})
    except (ValidationError, ValueError) as exc:
        fail(_first_line(exc), code=2)
    if settings.tasks:
        _import_tasks(settings.tasks)
    # Opened (and migrated) once before serving, so that a database that cannot be used is told
    # in one line here instead of in a failed server start's traceback.
    on_store(settings.database_url, _nothing, quiet=True)

    def banner(api: FastAPI, generated_token: str | None) -> None:
        base = f"http://{settings.host}:{settings.port}"
        out.print(f"[bold]Kairos {__version__}[/bold] is running")
        out.print(f"  API       {base}")
        out.print(f"  Web UI    {base}/ui")
        out.print(f"  Docs      {base}/docs")
        out.print(f"  Database  {_shown(settings.database_url)}", highlight=False)
        out.print(f"  Node      {api.state.scheduler.node_id}")
        if generated_token:
            out.print(
                f"\n  Admin token (shown only now, stored hashed): [bold]{generated_token}[/bold]"
                "\n  Send it as 'Authorization: Bearer <token>' or set KAIROS_ADMIN_TOKEN.\n"
            )
        out.file.flush()

    logs.configure(settings.log_level, settings.log_format)
    limits = ConnectionLimits(
        max_connections=connection_cap(settings),
        header_timeout_s=settings.header_timeout,
        body_timeout_s=settings.body_timeout,
    )
    app = create_app(settings, on_started=banner)
    _tune_gc()
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=GuardedHttpProtocol.bound(limits),
        ws="none",  # no WebSocket routes: a connection never leaves the guarded protocol
        timeout_keep_alive=settings.keep_alive_timeout,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's lines go through the handler ``logs.configure`` set
        lifespan="on",
    )
    QuietServer(config).run()


def _tune_gc() -> None:
    """Keep the cycle collector off the dispatch path. What is loaded by now (modules, schemas)
    lives as long as the process: frozen, full passes never walk it again. Each fire allocates
    a few hundred objects; collecting the young ones every 50,000 allocations instead of 700
    cut the time a 50,000-job burst took by a third, for a few MiB of memory."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


@db_app.command("upgrade")
def _db_upgrade(db: DbOption = None) -> None:
    """Bring the database schema up to date, without serving."""
    on_store(db, _nothing, quiet=True)  # opening migrates
    out.print(f"Database {_shown(database_of(db)[0])} is up to date.", highlight=False)


def _shown(url: str) -> str:
    """A database as a person looks for it: a SQLite file's full path, else its URL without
    the password."""
    file = sqlite_file(url)
    return str(file) if file is not None else make_url(url).render_as_string()


async def _nothing(_store: Store) -> None:
    return None


@app.command("preview")
def _preview(
    expression: Annotated[str, typer.Argument(help="A crontab, e.g. '0 2 * * 0'")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone")] = "UTC",
    count: Annotated[int, typer.Option(min=1, max=1000)] = 10,
) -> None:
    """Print the next fire times of a crontab expression (offline)."""
    try:
        zone = parse_zone(tz)
        trigger = triggers.build(CronTriggerSpec(type="cron", expression=expression), zone)
    except (InvalidField, ValueError) as exc:
        fail(str(exc) if isinstance(exc, InvalidField) else f"--tz: {exc}", code=2)
    now = datetime.now(UTC)
    for fire in triggers.preview(trigger, now, count):
        utc = fire.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        out.print(f"{fire.isoformat()}  ({fire:%a}, {utc})", highlight=False)


@app.command("version")
def _version() -> None:
    """Print the version."""
    out.print(__version__)


# Jobs --------------------------------------------------------------------------------------------


@jobs_app.command("list")
def _jobs_list(
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page")] = False,
) -> None:
    """List jobs."""
    with _client(url, token) as api:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            page = api.call("GET", "/jobs", params=params)
            items += page["items"]
            cursor = page["next_cursor"]
            if not (all_pages and cursor):
                break
    if as_json:
        print_json({"items": items, "next_cursor": cursor})
        return
    rows = [
        [
            job["id"],
            job["state"],
            _trigger_text(job["trigger"]),
            job["timezone"],
            job["next_run_time"] or "-",
            _target_text(job["target"]),
        ]
        for job in items
    ]
    headers = ["id", "state", "trigger", "timezone", "next run", "target"]
    print_table(headers, rows, whole={"id"})


@jobs_app.command("get")
def _jobs_get(job_id: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Show one job as JSON."""
    with _client(url, token) as api:
        print_json(api.call("GET", f"/jobs/{job_id}"))


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
    with _client(url, token) as api:
        response = api.request("PUT", f"/jobs/{job_id}", json=spec)
    job = response.json()
    if as_json:
        print_json(job)
        return
    verb = "created" if response.status_code == 201 else "replaced"
    out.print(f"Job [bold]{job_id}[/bold] {verb}; next run: {job['next_run_time'] or '-'}")


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
    from kairos.api.schemas import MAX_BATCH

    data = _read_json(file)
    jobs = data.get("jobs", data.get("items")) if isinstance(data, dict) else data
    if not isinstance(jobs, list) or not jobs:
        fail(
            f'{file}: expected a non-empty list of jobs, {{"jobs": [...]}} or {{"items": [...]}}',
            code=2,
        )
    created = 0
    with _client(url, token) as api:
        for start in range(0, len(jobs), MAX_BATCH):
            chunk = jobs[start : start + MAX_BATCH]
            if start:
                out.print(f"{start:,} jobs loaded; sending jobs {start:,} and on")
            created += api.call("POST", "/jobs:batch", json={"jobs": chunk})["created"]
    out.print(f"{len(jobs):,} jobs loaded: {created:,} created, {len(jobs) - created:,} replaced")


@jobs_app.command("delete")
def _jobs_delete(job_id: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Delete a job (its run history stays)."""
    with _client(url, token) as api:
        api.call("DELETE", f"/jobs/{job_id}")
    out.print(f"Job [bold]{job_id}[/bold] deleted")


@jobs_app.command("pause")
def _jobs_pause(job_id: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Pause a job."""
    with _client(url, token) as api:
        job = api.call("POST", f"/jobs/{job_id}/pause")
    out.print(f"Job [bold]{job_id}[/bold] is {job['state']}")


@jobs_app.command("resume")
def _jobs_resume(job_id: str, url: Url = DEFAULT_URL, token: Token = None) -> None:
    """Resume a paused job."""
    with _client(url, token) as api:
        job = api.call("POST", f"/jobs/{job_id}/resume")
    out.print(f"Job [bold]{job_id}[/bold] is {job['state']}; next run: {job['next_run_time']}")


@jobs_app.command("run")
def _jobs_run(
    job_id: str, url: Url = DEFAULT_URL, token: Token = None, as_json: AsJson = False
) -> None:
    """Start one run now, outside the schedule."""
    with _client(url, token) as api:
        run = api.call("POST", f"/jobs/{job_id}/run")
    if as_json:
        print_json(run)
        return
    out.print(f"Run {run['id']} of [bold]{job_id}[/bold] is {run['status']}")


# Runs --------------------------------------------------------------------------------------------


@app.command("runs")
def _runs_list(
    job: Annotated[str | None, typer.Option(help="Only this job's runs")] = None,
    status: Annotated[str | None, typer.Option(help="Only runs with this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    url: Url = DEFAULT_URL,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """List runs, newest first."""
    params: dict[str, Any] = {"limit": limit} | ({"status": status} if status else {})
    path = f"/jobs/{job}/runs" if job else "/runs"
    with _client(url, token) as api:
        page = api.call("GET", path, params=params)
    if as_json:
        print_json(page)
        return
    rows = [
        [
            str(run["id"]),
            run["job_id"],
            run["scheduled_for"],
            run["status"],
            str(run["attempt"]),
            str(run["http_status"] or "-"),
            "-" if run["duration_ms"] is None else f"{run['duration_ms']:.1f}",
            (run["error"] or "")[:60],
        ]
        for run in page["items"]
    ]
    headers = ["id", "job", "scheduled for", "status", "attempt", "http", "ms", "error"]
    print_table(headers, rows, whole={"id", "job"})


# Helpers -----------------------------------------------------------------------------------------


def _client(url: str, token: str | None) -> ApiClient:
    return ApiClient(url, token, on_error=_api_failed)


def _api_failed(error: ApiError) -> NoReturn:
    fail(str(error))


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
        if "expression" in trigger:
            return f"cron {trigger['expression']}"
        fields = {k: v for k, v in trigger.items() if k not in ("type",)}
        return "cron " + " ".join(f"{k}={v}" for k, v in fields.items())
    if kind == "interval":
        units = ("weeks", "days", "hours", "minutes", "seconds")
        return "every " + " ".join(f"{trigger[u]:g}{u[0]}" for u in units if trigger.get(u))
    return f"once at {trigger['run_date']}"


def _target_text(target: dict[str, Any]) -> str:
    if target.get("type") == "python":
        return f"python {target['task']}"
    return str(target["url"])


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        field = "KAIROS_" + "_".join(str(p) for p in error["loc"]).upper()
        return f"{field}: {error['msg']}"
    return str(exc).splitlines()[0]
