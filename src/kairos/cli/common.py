"""What the ``kairos`` commands share: their consoles, failing with a message, reading input,
and running something on the store."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from kairos.errors import KairosError
from kairos.settings import Settings
from kairos.store import Store, store_for_url

__all__ = ["err", "fail", "on_store", "out", "print_json", "seconds"]

T = TypeVar("T")

out = Console(soft_wrap=True)
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


def on_store(db: str | None, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store at ``db`` (default: ``KAIROS_DATABASE_URL``), migrating it, run ``action``
    on it and close it; fail with the message of a bad URL or of a ``KairosError``."""
    url = db or Settings().database_url
    try:
        store = store_for_url(url)
    except ValueError as exc:
        fail(str(exc), code=2)

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
