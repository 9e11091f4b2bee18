"""Pages of jobs, runs and audit records, and the opaque cursors that say where the next begins.

The ``Scheduler`` facade answers a ``Page``, so the HTTP API and the web UI page alike without
knowing each other. A cursor is the base64 of the last item's key, so a client cannot mistake it
for an offset; a cursor that is not one of ours is an ``InvalidField`` on ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from kairos.errors import InvalidField
from kairos.models import JobRecord, JobState
from kairos.store import JobQuery

__all__ = [
    "MAX_ID",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "id_cursor",
    "job_cursor",
    "job_key",
    "job_query",
    "page_of",
]

T = TypeVar("T")

MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    """Where the next page begins; None on the last page."""


def page_of(rows: list[T], limit: int, key: Callable[[T], str | int]) -> Page[T]:
    """The page of ``rows`` fetched with ``limit + 1``: the extra row only tells that there is
    a next page, which begins after the key of the page's last item."""
    if len(rows) <= limit:
        return Page(rows, None)
    items = rows[:limit]
    return Page(items, encode_cursor(key(items[-1])))


def job_query(
    *, prefix: str | None, state: JobState | None, tag: str | None, sort: str
) -> JobQuery:
    """The jobs a list asks for: those whose id starts with ``prefix``, in ``state``, with
    ``tag`` (each None for all), ordered by id or, with ``sort="next_run"``, by next run."""
    return JobQuery(prefix=prefix, state=state, tag=tag, by_next_run=sort == "next_run")


def encode_cursor(value: str | int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key a cursor carries; ``InvalidField`` on ``cursor`` if it is not one of ours."""
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not key:
        raise InvalidField(["cursor"], "not a cursor this API returned", source="query")
    return key


def id_cursor(cursor: str | None) -> int | None:
    """The row id a cursor of runs or audit records carries; ``InvalidField`` on ``cursor`` if
    it is not one of ours."""
    key = decode_cursor(cursor)
    if key is None:
        return None
    if not _is_id(key):
        raise InvalidField(["cursor"], "not a cursor this API returned", source="query")
    return int(key)


def job_cursor(cursor: str | None, *, by_next_run: bool) -> tuple[int | None, str] | None:
    """The ``JobQuery.after`` a cursor of ``job_key`` carries."""
    key = decode_cursor(cursor)
    if key is None or not by_next_run:
        return None if key is None else (None, key)
    due, _, job_id = key.partition("/")
    if not job_id or not (due == "-" or _is_id(due)):
        raise InvalidField(["cursor"], "not a cursor of this order (sort)", source="query")
    return (None if due == "-" else int(due)), job_id


def job_key(job: JobRecord, by_next_run: bool) -> str:
    """Where a page of jobs ended: its last job's id, and its next run if ordered by it."""
    return f"{job.next_run_us or '-'}/{job.id}" if by_next_run else job.id


def _is_id(text: str) -> bool:
    """Decimal digits of a 64-bit key (a database would overflow on a longer number)."""
    return text.isascii() and text.isdigit() and int(text) <= MAX_ID
