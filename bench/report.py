"""Repeating a workload and rendering its medians as Markdown tables."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bench.stats import median

__all__ = ["med", "repeat", "row", "table"]

T = TypeVar("T")


async def repeat(times: int, make: Callable[[], Coroutine[Any, Any, T]]) -> list[T]:
    return [await make() for _ in range(times)]


def med(items: list[Any], name: str) -> float:
    """The median of attribute ``name`` over the runs ``items``."""
    return median([getattr(item, name) for item in items])


def row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def table(title: str, header: list[str], rows: list[str]) -> list[str]:
    return [title, "", row(*header), row(*["---"] * len(header)), *rows, ""]
