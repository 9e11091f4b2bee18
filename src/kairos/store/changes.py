"""``ChangeFeed``: changes announced through a table, for a database that cannot announce them
itself (MariaDB has no ``LISTEN``/``NOTIFY``).

A change to work writes a row of ``kairos_changes`` in its own transaction, so the row exists
exactly when the change does. Every node reads the rows after the last it read, every
``FOLLOW_EVERY_S``: that interval bounds how late another node hears of a change (bench/
measures it). Rows go after ``KEEP_S``; a node that could not read for longer than that, or
had lost the database, is told to look at everything (``on_change(None, None)``).

Ids are handed out when a row is written, not when its transaction commits: a row with a lower
id can appear after one with a higher id was read. So the feed reads from the lowest id it may
still be missing, and gives up waiting for an id after ``GAP_WAIT_S`` (a transaction rolled
back leaves a hole for good).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select
from sqlalchemy.exc import DBAPIError

from kairos.errors import StoreUnavailable
from kairos.store.base import ChangeFn
from kairos.store.driver import DriverStatement
from kairos.store.schema import changes

__all__ = ["FOLLOW_EVERY_S", "ChangeFeed", "ChangeRows", "write_changes"]

log = logging.getLogger("kairos.store.changes")

FOLLOW_EVERY_S = 0.05
KEEP_S = 60.0
GAP_WAIT_S = 10.0
_PURGE_EVERY_S = 10.0
_READ_AT_MOST = 10_000
_PURGE_AT_MOST = 10_000

_WRITE = DriverStatement(insert(changes))
_LAST_ID = select(func.max(changes.c.id))
_AFTER = (
    select(changes.c.id, changes.c.due_us, changes.c.job_id)
    .where(changes.c.id > bindparam("floor"))
    .order_by(changes.c.id)
    .limit(_READ_AT_MOST)
)


class ChangeRows:
    """Which rows of the feed a node has read: every id up to ``floor``, and ``seen`` above it
    (the ids in between not yet read: maybe written by a transaction still open)."""

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self.seen: set[int] = set()
        self._gap_since: float | None = None

    def fresh(self, rows: Sequence[Sequence[Any]], now_s: float) -> list[Sequence[Any]]:
        """Of ``rows`` (read above ``floor``), those not read before; moves ``floor`` up past
        every id read, and past a hole older than ``GAP_WAIT_S``."""
        new = [row for row in rows if row[0] not in self.seen]
        self.seen.update(row[0] for row in new)
        self._close_up()
        if not self.seen:
            self._gap_since = None
        elif self._gap_since is None:
            self._gap_since = now_s
        elif now_s - self._gap_since > GAP_WAIT_S:
            self.floor = min(self.seen) - 1
            self._close_up()
            self._gap_since = now_s if self.seen else None
        return new

    def _close_up(self) -> None:
        while self.floor + 1 in self.seen:
            self.floor += 1
            self.seen.remove(self.floor)


def write_changes(
    conn: Connection, notices: list[tuple[int | None, str | None]], at_us: int
) -> None:
    """Announce ``notices`` ((due_us, job_id) pairs) when this transaction commits."""
    rows = [{"at_us": at_us, "due_us": due_us, "job_id": job_id} for due_us, job_id in notices]
    _WRITE.executemany(conn, rows)


Read = Callable[[Callable[[Connection], Any]], Awaitable[Any]]
Write = Callable[[Callable[[Connection], Any]], Awaitable[Any]]


class ChangeFeed:
    """Follows the feed through ``read`` and ``write`` (the store's transactions) and calls
    ``on_change`` for every row another node (or this one) wrote."""

    def __init__(self, read: Read, write: Write, on_change: ChangeFn) -> None:
        self._read = read
        self._write = write
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start following from the last row written now: once this returns, no later change
        is missed."""
        last = await self._read(lambda conn: conn.execute(_LAST_ID).scalar())
        self._task = asyncio.create_task(self._follow(ChangeRows(last or 0)), name="kairos-feed")
        self._on_change(None, None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _follow(self, rows: ChangeRows) -> None:
        read_at = purged_at = time.monotonic()
        while True:
            await asyncio.sleep(FOLLOW_EVERY_S)
            try:
                found = await self._read(partial(_rows_after, floor=rows.floor))
            except (StoreUnavailable, DBAPIError) as exc:
                log.warning("cannot read the change feed, trying again: %s", exc)
                continue
            now = time.monotonic()
            if now - read_at > KEEP_S:  # rows may have gone unread: look at everything
                self._on_change(None, None)
            read_at = now
            for _, due_us, job_id in rows.fresh(found, now):
                self._on_change(due_us, job_id)
            if now - purged_at > _PURGE_EVERY_S:
                purged_at = now
                await self._purge()

    async def _purge(self) -> None:
        def tx(conn: Connection) -> None:
            oldest = select(changes.c.id).where(
                changes.c.at_us < int((time.time() - KEEP_S) * 1_000_000)
            )
            ids = list(conn.execute(oldest.order_by(changes.c.id).limit(_PURGE_AT_MOST)).scalars())
            if ids:
                conn.execute(delete(changes).where(changes.c.id.in_(ids)))

        try:
            await self._write(tx)
        except (StoreUnavailable, DBAPIError) as exc:
            log.warning("cannot purge the change feed, trying again later: %s", exc)


def _rows_after(conn: Connection, *, floor: int) -> list[Sequence[Any]]:
    return list(conn.execute(_AFTER, {"floor": floor}).all())
