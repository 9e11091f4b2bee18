"""What the ``kairos`` commands share: their consoles, failing with a message, reading input,
printing tables, and running something on the store."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from kairos.errors import KairosError
from kairos.settings import Settings, database_url_of
from kairos.store import Store, store_for_url

__all__ = [
    "database_of",
    "err",
    "fail",
    "on_store",
    "out",
    "print_json",
    "print_table",
    "seconds",
    "sqlite_file",
]

T = TypeVar("T")


def _width() -> int | None:
    """A terminal's width (Rich's own choice, ``COLUMNS`` first); written to a file or a pipe
    with no ``COLUMNS``, no limit, so that a table's rows stay whole lines."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return None
    return 100_000


out = Console(soft_wrap=True, width=_width())
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s|ms)")
_UNIT_S = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1, "ms": 0.001}


def seconds(text: str, flag: str) -> float:
    """A duration like ``30s``, ``5m``, ``1h30m``, ``1d``; fail naming ``flag`` otherwise."""
    compact = text.replace(" ", "").lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        fail(f"{flag}: cannot read {text!r}; use e.g. 30s, 5m, 1h30m, 1d", code=2)
    return sum(float(number) * _UNIT_S[unit] for number, unit in parts)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, whole: Collection[str] = ()
) -> None:
    """Print ``rows`` under ``headers`` as wide as the terminal allows. The columns named in
    ``whole`` (ids) are never cut nor wrapped; the others give way, folding their text, down
    to the width of their headers (past that, the table is wider than the terminal)."""
    table = Table()
    least = 3 * len(headers) + 1  # the borders and the padding
    for index, header in enumerate(headers):
        if header in whole:
            width = max([len(header), *(len(row[index]) for row in rows)])
            table.add_column(header, no_wrap=True, min_width=width)
        else:
            width = len(header)
            table.add_column(header, overflow="fold", min_width=width)
        least += width
    for row in rows:
        table.add_row(*row)
    # Rich squeezes a table into its console's width, down to nothing: a narrow terminal gets
    # the table at its least width instead, which the terminal wraps as it wraps long lines.
    fits = least <= out.width
    wider = Console(file=out.file, width=least, force_terminal=out.is_terminal, soft_wrap=True)
    (out if fits else wider).print(table)


def database_of(db: str | None) -> tuple[str, str]:
    """The URL of the database a command uses and where it was chosen: ``--db`` (a URL or a
    SQLite file's path), else ``KAIROS_DATABASE_URL``, else the default."""
    if db:
        return database_url_of(db), "--db"
    try:
        url = Settings().database_url
    except ValueError as exc:
        fail(str(exc).splitlines()[0], code=2)
    source = "KAIROS_DATABASE_URL" if os.environ.get("KAIROS_DATABASE_URL") else "the default"
    return url, source


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (None for another database, or SQLite in memory)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).absolute()


def on_store(
    db: str | None,
    action: Callable[[Store], Awaitable[T]],
    *,
    create: bool = True,
    quiet: bool = False,
) -> T:
    """Open the store at ``db`` (see ``database_of``), migrating it, run ``action`` on it and
    close it; fail with the message of a bad URL or of a ``KairosError``. Unless ``quiet``, say
    on standard error which database it is. Unless ``create``, a SQLite file that does not
    exist is an error naming it, not a new, empty database."""
    url, source = database_of(db)
    file = sqlite_file(url)
    if not create and file is not None and not file.exists():
        fail(
            f"no database at {file} ({source}); pass the one `kairos serve` uses with --db"
            " or KAIROS_DATABASE_URL",
            code=2,
        )
    try:
        store = store_for_url(url, redis_prefix=Settings().redis_prefix)
    except ValueError as exc:
        fail(str(exc).splitlines()[0], code=2)
    if not quiet:
        shown = make_url(url).render_as_string() if file is None else str(file)
        new = file is not None and not file.exists()
        err.print(f"{'New database' if new else 'Database'}: {shown}", highlight=False)

    async def run() -> T:
        await store.open()
        try:
            return await action(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except KairosError as exc:
        fail(exc.detail, code=2 if exc.status_code == 422 else 1)
