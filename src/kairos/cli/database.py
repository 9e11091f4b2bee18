"""``kairos db copy``: move an installation from one database to another (SQLite to
PostgreSQL, MariaDB or Redis...), working on both databases directly."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from kairos.auth.admin import ADMIN_TOKEN_KEY
from kairos.auth.tokens import SIGNING_KEY_META
from kairos.cli.common import err, fail, out, print_table, sqlite_file
from kairos.errors import KairosError
from kairos.settings import Settings, database_url_of
from kairos.store import Store, store_for_url
from kairos.store.copy import CopyOptions, Counts, copy_store, count_records, held_records

__all__ = ["copy_command"]

# What signs the users' access tokens and checks the generated admin token: carried over, so
# that both keep working against the destination.
_META_KEYS = (SIGNING_KEY_META, ADMIN_TOKEN_KEY)


def copy_command(
    from_url: Annotated[
        str, typer.Option("--from", help="The database to copy: a URL or a SQLite file")
    ],
    to_url: Annotated[
        str, typer.Option("--to", help="The database to fill (empty): a URL or a SQLite file")
    ],
    runs: Annotated[bool, typer.Option("--runs", help="Copy the run history too")] = False,
    audit: Annotated[bool, typer.Option("--audit", help="Copy the audit log too")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check both databases and count, copy nothing")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Copy even while nodes run on the source")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Records per transaction")] = 500,
) -> None:
    """Copy jobs (with their schedules' positions, paused states and secrets), users, API keys
    and optionally runs and the audit log into an empty database. Stop the nodes serving the
    source first."""
    source_url, destination_url = database_url_of(from_url), database_url_of(to_url)
    if _shown(source_url) == _shown(destination_url):
        fail("--from and --to name the same database", code=2)
    for flag, url in (("--from", source_url), ("--to", destination_url)):
        if url.split(":", 1)[0].lower() == "memory":
            fail(f"{flag}: a memory store lives in one process: name a database", code=2)
    source_file = sqlite_file(source_url)
    if source_file is not None and not source_file.exists():
        fail(f"--from: no database at {source_file}", code=2)
    settings = _settings()
    source = _store(source_url, "--from", settings)
    destination: Store | None = _store(destination_url, "--to", settings)
    destination_file = sqlite_file(destination_url)
    if dry_run and destination_file is not None and not destination_file.exists():
        destination = None  # empty, and not to be made by a dry run
    options = CopyOptions(runs=runs, audit=audit, batch=batch, meta_keys=_META_KEYS)
    err.print(f"From {_shown(source_url)} to {_shown(destination_url)}", highlight=False)
    copy = _Copy(source, destination, options, lease_us=int(settings.node_lease * 1_000_000))
    try:
        asyncio.run(copy.run(dry_run=dry_run, force=force))
    except KairosError as exc:
        fail(exc.detail)


class _Copy:
    def __init__(
        self, source: Store, destination: Store | None, options: CopyOptions, lease_us: int
    ) -> None:
        """``destination``: None for a SQLite file a dry run need not make (it is empty)."""
        self.source = source
        self.destination = destination
        self.options = options
        self.lease_us = lease_us

    async def run(self, *, dry_run: bool, force: bool) -> None:
        await self.source.open()
        try:
            await self._live_nodes_checked(force)
            if self.destination is None:
                await self._dry_run()
                return
            await self.destination.open()
            try:
                await self._emptiness_checked(self.destination)
                if dry_run:
                    await self._dry_run()
                else:
                    await self._copy(self.destination)
            finally:
                await self.destination.close()
        finally:
            await self.source.close()

    async def _live_nodes_checked(self, force: bool) -> None:
        live = [n.id for n in await self.source.list_nodes() if n.heartbeat_age_us < self.lease_us]
        if live and not force:
            fail(
                f"nodes are running on the source ({', '.join(sorted(live))}): stop every"
                " `kairos serve` and app using it first, or pass --force to copy anyway"
            )

    async def _emptiness_checked(self, destination: Store) -> None:
        held = await held_records(destination, self.options)
        if held:
            fail(
                f"--to: the destination already holds {', '.join(held)}; copy into an empty"
                " database (nothing was copied)"
            )

    async def _dry_run(self) -> None:
        _print_counts(await count_records(self.source, self.options), None)
        out.print("Nothing copied (--dry-run).")

    async def _copy(self, destination: Store) -> None:
        before = await count_records(self.source, self.options)
        kept = await copy_store(self.source, destination, self.options, _progress)
        for key in kept:
            err.print(f"[yellow]warning:[/yellow] the destination keeps its own {key}")
        after = await count_records(destination, self.options)
        _print_counts(before, after)
        if before.rows() != after.rows():
            fail("the counts differ between the two databases: see above")
        out.print("Copied. Point `kairos serve` at the destination (--db / KAIROS_DATABASE_URL).")


def _progress(kind: str, done: int) -> None:
    err.print(f"  {kind}: {done} copied", highlight=False)


def _print_counts(source: Counts, destination: Counts | None) -> None:
    theirs = destination.rows() if destination is not None else {}
    headers = ["records", "source"] + (["destination"] if destination is not None else [])
    rows = []
    for kind, count in source.rows().items():
        if count is None:
            continue
        row = [kind, str(count)]
        if destination is not None:
            row.append(str(theirs[kind]))
        rows.append(row)
    print_table(headers, rows, whole={"records"})


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        fail(str(exc).splitlines()[0], code=2)


def _store(url: str, flag: str, settings: Settings) -> Store:
    try:
        return store_for_url(url, redis_prefix=settings.redis_prefix)
    except ValueError as exc:
        fail(f"{flag}: {str(exc).splitlines()[0]}", code=2)


def _shown(url: str) -> str:
    """A SQLite file's full path, else the URL without its password."""
    file = sqlite_file(url)
    if file is not None:
        return str(file)
    try:
        return make_url(url).render_as_string()
    except Exception:  # a URL SQLAlchemy cannot read (redis://...): the store judges it
        return url
