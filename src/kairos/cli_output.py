"""What every ``kairos`` command shares: its consoles, failing with a message, reading input."""

from __future__ import annotations

import json
import re
import sys
from typing import Any, NoReturn

import typer
from rich.console import Console

__all__ = ["err", "fail", "out", "print_json", "seconds"]

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
