"""The ``kairos`` command: ``serve``, ``db upgrade``, offline ``preview``, ``users`` and ``keys``
(see ``kairos.cli.accounts``), and a client for a running server (``jobs``, ``runs``, ``apply``
and ``secrets``: ``kairos.cli.jobs``, ``kairos.cli.documents``, ``kairos.cli.secrets``)."""

from __future__ import annotations

import gc
import os
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from kairos import __version__, logs, triggers
from kairos.cli.accounts import keys_app, users_app
from kairos.cli.apply import apply_documents
from kairos.cli.common import (
    database_of,
    fail,
    on_store,
    out,
    sqlite_file,
)
from kairos.cli.database import copy_command
from kairos.cli.jobs import cancel_command, jobs_app, runs_command
from kairos.cli.secrets import secrets_app
from kairos.errors import InvalidField, KairosError
from kairos.models import CronTriggerSpec, parse_zone
from kairos.settings import Settings
from kairos.store import Store

__all__ = ["app", "main"]

app = typer.Typer(help="Kairos: a self-hosted, API-driven job scheduler.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(db_app, name="db")
db_app.command("copy")(copy_command)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(secrets_app, name="secrets")
app.command("runs")(runs_command)
app.command("cancel")(cancel_command)
app.command("apply")(apply_documents)

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL or SQLite file [KAIROS_DATABASE_URL]")
]


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
        # Listed proxies: their X-Forwarded-* headers are read by the app (api/forwarded.py),
        # which must see the address the connection came from.
        proxy_headers=not settings.trusted_proxies,
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


# Helpers -----------------------------------------------------------------------------------------


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        field = "KAIROS_" + "_".join(str(p) for p in error["loc"]).upper()
        return f"{field}: {error['msg']}"
    return str(exc).splitlines()[0]
