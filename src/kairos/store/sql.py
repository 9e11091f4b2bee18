"""``SqlStore``: the store over SQLAlchemy Core, shared by every relational backend.

Statements run on synchronous connections in worker threads so the event loop never blocks on
the database. Writes go through one executor per store (SQLite has a single writer anyway);
backends say how many writer threads they allow and how due rows are locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    Table,
    bindparam,
    exists,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from kairos.errors import Conflict, JobExists, JobNotFound, RunNotFound, StoreUnavailable
from kairos.identity import Actor
from kairos.models import JobRecord, JobSpec, JobState, RunRecord, RunStatus
from kairos.store.accounts import SqlAccounts, audit_row, write_audit
from kairos.store.base import (
    Claim,
    ClaimPolicy,
    FinishedRun,
    JobQuery,
    NodeInfo,
    QueuedRun,
    Slots,
    StartedRun,
    Store,
    Verdict,
)
from kairos.store.driver import DriverStatement
from kairos.store.schema import IS_QUEUED, IS_RUNNING, job_tags, jobs, meta, nodes, runs

__all__ = ["SqlStore"]

T = TypeVar("T")

_MIGRATIONS = Path(__file__).with_name("migrations")
_SPEC_CACHE_SIZE = 50_000
# One short write in this many goes to the writer thread anyway (see ``SqlStore._write``).
_INLINE_WRITES_PER_TRIP = 100
# A batch of up to this many jobs is a short write.
_SHORT_BATCH = 16
_INTERRUPTED = "the node running it stopped before the call finished"
_DELETED = "the job was deleted before this run started"
_BREAKER = "circuit-breaker"
# A batch this large is audited without each job's definition (only who created or replaced it).
_AUDIT_DEFINITIONS_UP_TO = 100
# ``check_writable``'s probe: a value larger than a database page, so that writing it needs a free
# page or the file to grow, as new runs do; written in a savepoint rolled back at once. Random,
# so that no backend stores it compressed into less.
_PROBE_ROOM_KEY = "readiness_probe_room"
_PROBE_ROOM = secrets.token_hex(4096)
_PROBE_KEY = "readiness_probe"
_PROBE_EVERY_S = 1.0
_POSTGRES_CORRUPT = (psycopg.errors.DataCorrupted, psycopg.errors.IndexCorrupted)


class SqlStore(SqlAccounts, Store):
    """A store on one SQLAlchemy engine for writes and one for reads (they may be the same).

    Statements run in worker threads, off the event loop. A backend whose database lives in
    this process may also pass ``inline`` engines (for reads, for writes): short operations (a
    row by its key, one job's change) then run on the event loop itself while the writer thread
    is idle. Handing work to a thread and back costs more CPU than such a statement (about
    0.1-0.2 ms against a few tens of microseconds, measured on a 2-core virtual machine).
    An inline engine must never wait (no busy timeout) and never checkpoint: what would have to
    wait goes to the threads instead, and the writer thread's own commits checkpoint.
    """

    writer_threads = 1

    def __init__(
        self, writer: Engine, reader: Engine, inline: tuple[Engine, Engine] | None = None
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._inline = inline
        self._inline_connections: dict[Engine, Connection] = {}
        self._in_write_pool = 0
        """Operations handed to the writer thread and not yet done: while any is, a write must
        queue behind it."""
        self._inline_writes = 0
        self._write_pool = ThreadPoolExecutor(self.writer_threads, thread_name_prefix="kairos-w")
        self._read_pool = (
            self._write_pool
            if reader is writer and self.writer_threads == 1
            else ThreadPoolExecutor(4, thread_name_prefix="kairos-r")
        )
        self._specs: OrderedDict[str, JobSpec] = OrderedDict()
        self._probing = asyncio.Lock()
        self._next_probe = 0.0
        self._probe_failure: str | None = None
        add = self._dialect_insert(jobs)
        # Atomic even when two nodes create one new id at once. Built once: it is on the hot path.
        self._upsert_jobs = add.on_conflict_do_update(
            index_elements=["id"],
            set_={name: add.excluded[name] for name in _REPLACED_ON_UPSERT},
        ).returning(jobs.c.id, jobs.c.created_us)
        self._upsert_job = DriverStatement(self._upsert_jobs)
        self._insert_claimed_runs = DriverStatement(
            self._insert_ignoring_duplicates().returning(
                runs.c.id, runs.c.job_id, runs.c.scheduled_for_us, runs.c.status
            )
        )
        self._due_jobs = DriverStatement(
            self._lock_due(
                select(*_JOB_COLUMNS)
                .where(jobs.c.next_run_us <= bindparam("due_by"))
                .order_by(jobs.c.next_run_us)
                .limit(bindparam("limit")),
                jobs,
            )
        )
        self._due_pending = DriverStatement(
            self._lock_due(
                select(*_PENDING_RUN_COLUMNS, *_JOB_COLUMNS)
                .join(jobs, jobs.c.id == runs.c.job_id)
                .where(IS_QUEUED, runs.c.due_us <= bindparam("due_by"))
                .order_by(runs.c.due_us)
                .limit(bindparam("limit")),
                runs,
            )
        )

    # Plumbing ----------------------------------------------------------------------------------

    async def _write(self, fn: Callable[[Connection], T], *, short: bool = False) -> T:
        """``fn`` in a write transaction; ``short``: it touches a few rows by key."""
        conn = self._inline_connection(write=True) if short else None
        if conn is not None:
            self._inline_writes += 1
            with contextlib.suppress(_WouldWait):
                return _inline_transaction(conn, fn)
        self._inline_writes = 0
        return await self._run(self._write_pool, self._writer, fn)

    async def _read(self, fn: Callable[[Connection], T], *, short: bool = False) -> T:
        """``fn`` in a read transaction; ``short``: it reads a few rows by key."""
        conn = self._inline_connection(write=False) if short else None
        if conn is not None:
            with contextlib.suppress(_WouldWait):
                return _inline_transaction(conn, fn)
        return await self._run(self._read_pool, self._reader, fn)

    def _inline_connection(self, *, write: bool) -> Connection | None:
        """The connection for a short operation on the event loop, if it may run there now."""
        if self._inline is None:
            return None
        # A write must not overtake one queued for the writer thread; every so many, a short
        # write goes to the thread anyway, as its commit checkpoints the WAL.
        if write and (self._in_write_pool or self._inline_writes >= _INLINE_WRITES_PER_TRIP):
            return None
        # A read shares the writer's connection when there is only one (in memory).
        if not write and self._read_pool is self._write_pool and self._in_write_pool:
            return None
        engine = self._inline[1] if write else self._inline[0]
        # Kept open: checking a connection out of the pool and back costs as much as the
        # transaction. Only the event loop's thread uses these, one operation at a time.
        conn = self._inline_connections.get(engine)
        if conn is None:
            conn = self._inline_connections[engine] = engine.connect()
        return conn

    async def _run(
        self, pool: ThreadPoolExecutor, engine: Engine, fn: Callable[[Connection], T]
    ) -> T:
        loop = asyncio.get_running_loop()
        counted = pool is self._write_pool
        self._in_write_pool += counted
        try:
            return await loop.run_in_executor(pool, _in_transaction, engine, fn)
        except OperationalError as exc:
            raise StoreUnavailable(f"the database is unavailable: {exc.orig}") from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(f"the database connection was lost: {exc.orig}") from exc
            if _corrupt(exc):
                raise StoreUnavailable(f"the database is corrupt: {exc.orig}") from exc
            raise
        finally:
            self._in_write_pool -= counted

    def _lock_due(self, query: Select[Any], of: Table) -> Select[Any]:
        """Lock the claimed rows of ``of`` against other nodes, skipping rows they hold; a no-op
        where the database has a single writer."""
        return query

    def _notify(self, conn: Connection, due_us: int | None, job_id: str | None = None) -> None:
        """Tell other processes, when this transaction commits, that work falls due at
        ``due_us`` (None: look now) and that job ``job_id`` changed (see ``Store.watch``)."""
        self._notify_many(conn, [(due_us, job_id)])

    def _notify_many(self, conn: Connection, notices: list[tuple[int | None, str | None]]) -> None:
        """``_notify`` for many notices in one statement. A no-op where no other process can
        share the database."""

    def _before_migrations(self, conn: Connection) -> None:
        """Serialise concurrent migrations where several processes may start at once."""

    def _dialect_insert(self, table: Table) -> Any:
        module = postgresql if self._writer.dialect.name == "postgresql" else sqlite
        return module.insert(table)

    def _insert_ignoring_duplicates(self) -> Any:
        return self._dialect_insert(runs).on_conflict_do_nothing(
            index_elements=["job_id", "scheduled_for_us", "attempt"]
        )

    # Lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        def migrate(conn: Connection) -> None:
            self._before_migrations(conn)
            _migrate(conn)

        try:
            await self._write(migrate)
        except (StoreUnavailable, DBAPIError) as exc:
            cause = exc.__cause__ if isinstance(exc, StoreUnavailable) else exc
            raise StoreUnavailable(self._cannot_open(getattr(cause, "orig", cause))) from exc

    def _cannot_open(self, error: BaseException | None) -> str:
        """What ``open`` says when the database refuses ``error``: which database, what is
        wrong, what to do, on one line."""
        return f"cannot open the database: {_one_line(error)}"

    async def close(self) -> None:
        self._write_pool.shutdown(wait=True)
        if self._read_pool is not self._write_pool:
            self._read_pool.shutdown(wait=True)
        for conn in self._inline_connections.values():
            conn.close()
        for engine in {self._writer, self._reader, *(self._inline or ())}:
            engine.dispose()

    async def check_writable(self) -> None:
        async with self._probing:
            if time.monotonic() >= self._next_probe:
                self._probe_failure = await self._probe()
                self._next_probe = time.monotonic() + _PROBE_EVERY_S
        if self._probe_failure is not None:
            raise StoreUnavailable(self._probe_failure)

    async def _probe(self) -> str | None:
        """Why the store cannot be written now (None: it can)."""
        stamp = self._dialect_insert(meta).values(key=_PROBE_KEY, value=str(time.time_ns()))
        stamp = stamp.on_conflict_do_update(
            index_elements=["key"], set_={"value": stamp.excluded.value}
        )

        def tx(conn: Connection) -> None:
            room = conn.begin_nested()
            conn.execute(insert(meta).values(key=_PROBE_ROOM_KEY, value=_PROBE_ROOM))
            room.rollback()
            conn.execute(stamp)  # committed, so that it reaches the disk (the log)

        try:
            await self._write(tx)
        except StoreUnavailable as exc:
            return exc.detail
        except DBAPIError as exc:
            return f"the database cannot be written: {_one_line(exc.orig)}"
        return None

    # Jobs --------------------------------------------------------------------------------------

    async def insert_job(self, job: JobRecord, *, by: Actor | None = None) -> None:
        def tx(conn: Connection) -> None:
            values = _job_values(job)
            conn.execute(insert(jobs).values(values))
            _set_tags(conn, [job])
            self._notify_job(conn, job)
            if by is not None:
                detail = _definition(job, values["spec"])
                write_audit(conn, [audit_row(by, "job.create", job.id, detail)])

        try:
            await self._write(tx, short=True)
        except IntegrityError:
            raise JobExists(job.id) from None

    async def upsert_jobs(
        self, batch: Sequence[JobRecord], *, by: Actor | None = None
    ) -> dict[str, int]:
        if not batch:
            return {}

        def tx(conn: Connection) -> dict[str, int]:
            values = [_job_values(job) for job in batch]
            if len(values) == 1:  # a PUT: the hot case
                rows = self._upsert_job.execute(conn, values[0])
            else:
                rows = conn.execute(self._upsert_jobs, values).all()
            stored = {job_id: created_us for job_id, created_us in rows}
            # Every job's old tags go: "created" is told apart by creation times, which two
            # nodes' clocks could make equal, and a stale tag would list a job wrongly for good.
            _set_tags(conn, batch, replacing=[job.id for job in batch])
            self._notify_many(conn, [(job.next_run_us, job.id) for job in batch])
            if by is not None:
                write_audit(conn, _upsert_audit(by, batch, values, stored))
            return stored

        return await self._write(tx, short=len(batch) <= _SHORT_BATCH)

    async def update_job(
        self,
        job: JobRecord,
        *,
        expected_updated_us: int,
        by: Actor | None = None,
        action: str = "job.update",
    ) -> None:
        def tx(conn: Connection) -> None:
            values = _job_values(job)
            del values["created_us"]
            query = update(jobs).where(
                jobs.c.id == job.id, jobs.c.updated_us == expected_updated_us
            )
            if conn.execute(query.values(values)).rowcount:
                _set_tags(conn, [job], replacing=[job.id])
                self._notify_job(conn, job)
                if by is not None:
                    detail = _definition(job, values["spec"]) if action == "job.update" else None
                    write_audit(conn, [audit_row(by, action, job.id, detail)])
                return
            if conn.execute(select(jobs.c.id).where(jobs.c.id == job.id)).first() is None:
                raise JobNotFound(job.id)
            raise Conflict(f"Job {job.id!r} was changed meanwhile; read it again and retry")

        await self._write(tx, short=True)

    async def get_job(self, job_id: str) -> JobRecord:
        row = await self._row_by_key(_JOB_BY_ID, b_id=job_id)
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    async def list_jobs(self, query: JobQuery, limit: int) -> list[JobRecord]:
        chosen = select(*_JOB_COLUMNS).where(*self._job_filter(query))
        # The id to order by: with a tag, the tag table's, whose index is already in that order.
        key = jobs.c.id
        if query.tag is not None:
            chosen = chosen.join(
                job_tags, (job_tags.c.job_id == jobs.c.id) & (job_tags.c.tag == query.tag)
            )
            key = job_tags.c.job_id
        after_us, after_id = query.after or (None, None)
        by_id = chosen.order_by(key)
        if not query.by_next_run:
            statements = [by_id if after_id is None else by_id.where(key > after_id)]
        else:
            # Jobs with a next run, soonest first; then (on a page not yet full) those without,
            # by id. A cursor with a next run is in the first part, one without in the second.
            due = jobs.c.next_run_us
            by_due = chosen.where(due.is_not(None)).order_by(due, jobs.c.id)
            without = by_id.where(due.is_(None))
            if query.after is None:
                statements = [by_due, without]
            elif after_us is not None:
                later = (due > after_us) | ((due == after_us) & (jobs.c.id > after_id))
                statements = [by_due.where(later), without]
            else:
                statements = [without.where(key > after_id)]

        def read(conn: Connection) -> list[Sequence[Any]]:
            rows: list[Sequence[Any]] = []
            for statement in statements:
                if len(rows) < limit:
                    rows += conn.execute(statement.limit(limit - len(rows))).all()
            return rows

        return [_job(row) for row in await self._read(read)]

    def _job_filter(self, query: JobQuery) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if query.prefix:
            # Ids compare bytewise (see schema.py): those with a prefix are the range up to the
            # prefix with its last character raised by one, read from the primary key (also by
            # a prepared statement's generic plan, which a LIKE pattern's would not be).
            after = query.prefix[:-1] + chr(ord(query.prefix[-1]) + 1)
            conditions += [jobs.c.id >= query.prefix, jobs.c.id < after]
        if query.state is not None:
            conditions.append(_STATE[query.state])
        return conditions

    async def count_jobs(self) -> dict[JobState, int]:
        tripped = jobs.c.pause_reason.is_not(None)
        finished = jobs.c.next_run_us.is_(None)
        query = select(jobs.c.paused, tripped, finished, func.count()).group_by(
            jobs.c.paused, tripped, finished
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        counts = dict.fromkeys(JobState, 0)
        for paused, is_tripped, is_finished, count in rows:
            counts[JobState.of(paused, is_tripped, None if is_finished else 0)] += count
        return counts

    async def delete_job(
        self, job_id: str, *, purge_runs: bool = False, by: Actor | None = None
    ) -> None:
        def tx(conn: Connection) -> None:
            if not conn.execute(jobs.delete().where(jobs.c.id == job_id)).rowcount:
                raise JobNotFound(job_id)
            _DROP_TAGS.execute(conn, {"b_id": job_id})
            if by is not None:
                detail = {"purge_runs": True} if purge_runs else None
                write_audit(conn, [audit_row(by, "job.delete", job_id, detail)])
            self._notify(conn, None, job_id)
            conn.execute(
                update(runs)
                .where(runs.c.job_id == job_id, IS_QUEUED)
                .values(status=RunStatus.SKIPPED.value, error=_DELETED)
            )
            if purge_runs:
                conn.execute(runs.delete().where(runs.c.job_id == job_id, _FINAL))

        await self._write(tx, short=not purge_runs)

    def _notify_job(self, conn: Connection, job: JobRecord) -> None:
        self._notify(conn, job.next_run_us, job.id)

    def _due_job(self, row: Sequence[Any]) -> JobRecord:
        """``_job`` with the parsed spec cached by its text (specs are immutable): a job that
        fires every second is claimed every second, and jobs made from one template share one
        parse. Only claims fill the cache, so browsing a million jobs does not grow memory."""
        text = row[1]
        spec = self._specs.get(text)
        if spec is None:
            spec = JobSpec.from_stored(text)
            self._specs[text] = spec
            if len(self._specs) > _SPEC_CACHE_SIZE:
                self._specs.popitem(last=False)
        return _job(row, spec)

    # Runs --------------------------------------------------------------------------------------

    async def add_manual_run(
        self, job_id: str, scheduled_for_us: int, *, by: Actor | None = None
    ) -> RunRecord:
        def tx(conn: Connection) -> RunRecord:
            if conn.execute(_JOB_KEPT, {"b_id": job_id}).first() is None:
                raise JobNotFound(job_id)
            at = scheduled_for_us
            while True:  # two manual runs in one microsecond: the ledger key needs distinct times
                query = self._insert_ignoring_duplicates().returning(runs.c.id)
                values = _run_values(job_id, at, RunStatus.SCHEDULED, manual=True)
                run_id = conn.execute(query.values(values)).scalar()
                if run_id is not None:
                    self._notify(conn, None)
                    if by is not None:
                        write_audit(conn, [audit_row(by, "job.run", job_id, {"run_id": run_id})])
                    return RunRecord(run_id, job_id, at, 1, RunStatus.SCHEDULED, manual=True)
                at += 1

        return await self._write(tx, short=True)

    async def claim_due(
        self,
        now_us: int,
        limit: int,
        node_id: str,
        policy: ClaimPolicy,
        *,
        ahead_us: int = 0,
        finished: Sequence[FinishedRun] = (),
    ) -> Claim:
        def tx(conn: Connection) -> Claim:
            paused = self._finish(conn, node_id, finished) if finished else {}
            claim = self._claim(now_us, ahead_us, limit, node_id, policy, conn)
            claim.paused.update(paused)
            return claim

        return await self._write(tx)

    def _claim(
        self,
        now_us: int,
        ahead_us: int,
        limit: int,
        node_id: str,
        policy: ClaimPolicy,
        conn: Connection,
    ) -> Claim:
        # Queued runs (run now, retries) first: they are older work, and a fire claimed ahead
        # must not hold the slot a queued run of its job is waiting for.
        started, waiting, missed = self._start_pending(conn, now_us, limit, node_id, policy)
        queued_started = Counter(run.job.id for run in started)
        budget = limit - len(started)
        due = self._due_jobs.execute(conn, {"due_by": now_us + ahead_us, "limit": limit})
        claimed = [self._due_job(row) for row in due]
        running = self._running_counts(conn, [job.id for job in claimed], node_id)
        for job_id, n in queued_started.items():
            running[job_id] = running.get(job_id, 0) - n  # in flight "before this pass": not them
        rows: list[dict[str, Any]] = []
        moves: list[dict[str, Any]] = []
        recorded: Counter[RunStatus] = Counter({RunStatus.MISSED: missed} if missed else {})
        for job in claimed:
            slots = Slots(running.get(job.id, 0), queued_started.get(job.id, 0), budget)
            fire_plan = policy.plan_due(job, now_us, slots)
            if fire_plan.pause_reason is not None:
                unplanned = jobs.c.paused.is_(False)
                reason = fire_plan.pause_reason
                self._set_paused(
                    conn, job.id, True, unplanned, now_us, pause_reason=reason, next_run_us=None
                )
                continue
            for planned in fire_plan.runs:
                values = _run_values(job.id, planned.scheduled_for_us, planned.status, False)
                if planned.status is RunStatus.RUNNING:
                    budget -= 1
                    values["node_id"] = node_id
                    values["started_us"] = max(now_us, _due_of(job, planned.scheduled_for_us))
                elif planned.status is RunStatus.SCHEDULED:
                    waiting = True  # queued behind a run started in this pass
                else:
                    values.update(error=planned.error, node_id=node_id, finished_us=now_us)
                    recorded[planned.status] += 1
                rows.append(values)
            moves.append(
                {"b_id": job.id, "b_fire": fire_plan.next_fire_us, "b_run": fire_plan.next_run_us}
            )
        started += self._insert_claimed(conn, rows, {job.id: job for job in claimed})
        _MOVE_JOBS.executemany(conn, moves)
        exhausted = len(due) >= limit or len(started) >= limit
        return Claim(
            started,
            recorded,
            exhausted,
            None if exhausted else _next_due(conn, now_us),
            waiting,
        )

    def _running_counts(self, conn: Connection, job_ids: list[str], me: str) -> dict[str, int]:
        """Runs in flight per job, for ``max_instances``; runs of nodes known to have crashed
        are not in flight, whether or not their lease has run out yet."""
        if not job_ids:
            return {}
        rows = conn.execute(_RUNNING_COUNTS, {"ids": job_ids}).all()
        others = {node for _, node, _ in rows if node != me}
        crashed = self._crashed(conn, others, me) if others else set()
        counts: dict[str, int] = {}
        for job_id, node, n in rows:
            if node not in crashed:
                counts[job_id] = counts.get(job_id, 0) + n
        return counts

    def _crashed(self, conn: Connection, node_ids: set[str], me: str) -> set[str]:
        """Those of ``node_ids`` known (to ``me``) to have crashed, before their lease says so.
        A backend that cannot tell knows none."""
        return set()

    def _finish(
        self, conn: Connection, node_id: str, finished: Sequence[FinishedRun]
    ) -> dict[int, str]:
        """Record outcomes, fenced (see ``finish_runs``), queue the retries they ask for and
        move the circuit breakers of their jobs."""
        special = [f for f in finished if f.retry_due_us is not None or f.verdict is not None]
        ids = [f.run_id for f in special]
        held = conn.execute(_HELD, {"ids": ids, "node": node_id}).all() if special else ()
        _FINISH.executemany(conn, _finish_params(node_id, finished))
        if not held:
            return {}
        by_id = {f.run_id: f for f in special}
        retries = [
            _run_values(
                r.job_id,
                r.scheduled_for_us,
                RunStatus.SCHEDULED,
                r.manual,
                r.attempt + 1,
                due_us=by_id[r.id].retry_due_us,
            )
            for r in held
            if by_id[r.id].retry_due_us is not None
        ]
        if retries:
            conn.execute(self._insert_ignoring_duplicates(), retries)
            self._notify(conn, min(row["due_us"] for row in retries))
        paused = {}
        for r in held:
            verdict = by_id[r.id].verdict
            if verdict is not None:
                reason = self._judge(conn, r.job_id, verdict)
                if reason is not None:
                    paused[r.id] = reason
        return paused

    def _judge(self, conn: Connection, job_id: str, verdict: Verdict) -> str | None:
        """Apply the verdict of one of a job's fires to its circuit breaker, with the times and
        reason it gives; return the pause reason if this verdict tripped it."""
        broken = jobs.c.pause_reason.is_not(None)
        at_us = verdict.decided_us
        if verdict.probe and not verdict.failed:
            fire_us, run_us = verdict.resume
            values = {"failures": 0, "pause_reason": None, "next_fire_us": fire_us}
            self._set_paused(conn, job_id, False, broken, at_us, next_run_us=run_us, **values)
            return None
        if verdict.probe:
            due = {"next_fire_us": verdict.next_probe_us, "next_run_us": verdict.next_probe_us}
            query = update(jobs).where(jobs.c.id == job_id, broken)
            if conn.execute(query.values(pause_reason=verdict.pause_reason, **due)).rowcount:
                self._notify(conn, verdict.next_probe_us, job_id)
            return None
        if not verdict.failed:
            conn.execute(_RESET_FAILURES, {"b_id": job_id})
            return None
        count = conn.execute(_COUNT_FAILURE, {"b_id": job_id}).scalar()
        if verdict.limit is None or count is None or count < verdict.limit:
            return None
        reason, probe = verdict.pause_reason, verdict.next_probe_us
        paused = self._set_paused(
            conn,
            job_id,
            True,
            jobs.c.paused.is_(False),
            at_us,
            pause_reason=reason,
            next_fire_us=probe,
            next_run_us=probe,
        )
        return reason if paused else None

    def _set_paused(
        self,
        conn: Connection,
        job_id: str,
        paused: bool,
        condition: ColumnElement[bool],
        now_us: int,
        **values: Any,
    ) -> bool:
        """Pause or resume a job from within the store (its spec says so too) at ``now_us``, if
        ``condition`` holds (return whether it did); other replicas hear of it as of any
        change."""
        # Locked (on PostgreSQL) until the job is written back: a change made meanwhile (a PUT)
        # waits, instead of being overwritten with the spec read here.
        row = conn.execute(
            select(jobs.c.spec, jobs.c.updated_us)
            .where(jobs.c.id == job_id, condition)
            .with_for_update()
        ).first()
        if row is None:
            return False
        spec = JobSpec.from_stored(row.spec).model_copy(update={"paused": paused})
        updated_us = max(row.updated_us + 1, now_us)
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(spec=spec.model_dump_json(), paused=paused, updated_us=updated_us, **values)
        )
        self._notify(conn, values.get("next_run_us"), job_id)
        action, detail = ("job.pause", values["pause_reason"]) if paused else ("job.resume", None)
        by = Actor(_BREAKER, now_us)
        write_audit(conn, [audit_row(by, action, job_id, {"reason": detail} if detail else None)])
        return True

    def _insert_claimed(
        self, conn: Connection, rows: list[dict[str, Any]], by_id: dict[str, JobRecord]
    ) -> list[StartedRun]:
        if not rows:
            return []
        started = []
        for run_id, job_id, scheduled_for_us, status in self._insert_claimed_runs.execute_each(
            conn, rows
        ):
            if status == RunStatus.RUNNING.value:
                job = by_id[job_id]
                run = RunRecord(run_id, job_id, scheduled_for_us, 1, RunStatus.RUNNING)
                started.append(StartedRun(run, job, _due_of(job, scheduled_for_us)))
        return started

    def _start_pending(
        self, conn: Connection, now_us: int, budget: int, node_id: str, policy: ClaimPolicy
    ) -> tuple[list[StartedRun], bool, int]:
        """Start the queued runs that are due as ``policy`` admits them, and say whether some
        wait for a run of their job to finish first. The third value: how many were too late
        and recorded ``missed``."""
        rows = self._due_pending.execute(conn, {"due_by": now_us, "limit": budget})
        split = len(_PENDING_RUN_COLUMNS)
        pending = [(row[:split], self._due_job(row[split:])) for row in rows]
        running = self._running_counts(conn, list({job.id for _, job in pending}), node_id)
        begun: Counter[str] = Counter()
        started: list[StartedRun] = []
        updates: list[dict[str, Any]] = []
        waiting = False
        missed: list[dict[str, Any]] = []
        for (run_id, scheduled_for_us, due_us, attempt, manual), job in pending:
            # SQLite's driver gives ``manual`` as 0 or 1.
            queued = QueuedRun(run_id, scheduled_for_us, due_us, attempt, bool(manual))
            slots = Slots(running.get(job.id, 0), begun[job.id], budget - len(started))
            admitted = policy.admit_queued(queued, job, now_us, slots)
            if admitted.status is RunStatus.MISSED:
                missed.append({"b_id": run_id, "b_finished": now_us, "b_error": admitted.error})
                continue
            if admitted.status is not RunStatus.RUNNING:
                waiting = True
                continue
            begun[job.id] += 1
            updates.append({"b_id": run_id, "b_node": node_id, "b_started": now_us})
            run = RunRecord(
                run_id,
                job.id,
                scheduled_for_us,
                attempt,
                RunStatus.RUNNING,
                manual=queued.manual,
                node_id=node_id,
                started_us=now_us,
            )
            started.append(StartedRun(run, job, scheduled_for_us))
        _START_PENDING.executemany(conn, updates)
        _MISS_PENDING.executemany(conn, missed)
        return started, waiting, len(missed)

    async def finish_runs(self, node_id: str, finished: Sequence[FinishedRun]) -> dict[int, str]:
        if not finished:
            return {}
        return await self._write(lambda conn: self._finish(conn, node_id, finished))

    async def interrupt_running(self, node_id: str | None, *, retries: int) -> int:
        condition = runs.c.node_id == node_id if node_id is not None else true()

        def tx(conn: Connection) -> int:
            return self._interrupt(conn, condition, self._db_now_us(conn), retries)

        return await self._write(tx)

    def _interrupt(
        self, conn: Connection, condition: ColumnElement[bool], now_us: int, retries: int
    ) -> int:
        # One statement: a run its node finishes meanwhile is no longer ``running`` when this
        # reaches it (PostgreSQL checks the row again after waiting for its lock).
        victims = conn.execute(
            update(runs)
            .where(IS_RUNNING, condition)
            .values(status=RunStatus.INTERRUPTED.value, finished_us=now_us, error=_INTERRUPTED)
            .returning(
                runs.c.id, runs.c.job_id, runs.c.scheduled_for_us, runs.c.attempt, runs.c.manual
            )
        ).all()
        if not victims:
            return 0
        alive = set(
            conn.execute(
                select(jobs.c.id).where(jobs.c.id.in_({v.job_id for v in victims}))
            ).scalars()
        )
        retried = [
            _run_values(v.job_id, v.scheduled_for_us, RunStatus.SCHEDULED, v.manual, v.attempt + 1)
            for v in victims
            if v.attempt <= retries and v.job_id in alive
        ]
        if retried:
            conn.execute(self._insert_ignoring_duplicates(), retried)
            self._notify(conn, None)
        given_up = {v.job_id for v in victims if v.attempt > retries and v.job_id in alive}
        if given_up:
            self._rearm_probes(conn, given_up, now_us)
        return len(victims)

    def _rearm_probes(self, conn: Connection, job_ids: set[str], now_us: int) -> None:
        """A probe of a job the circuit breaker paused was interrupted for good: its job has no
        next fire, so it would stay paused until resumed by hand. Set the next probe."""
        tripped = conn.execute(
            select(jobs.c.id, jobs.c.spec)
            .where(
                jobs.c.id.in_(job_ids),
                jobs.c.pause_reason.is_not(None),
                jobs.c.next_run_us.is_(None),
            )
            .with_for_update()  # a job replaced meanwhile must not get this probe
        ).all()
        for job_id, spec_json in tripped:
            after = JobSpec.from_stored(spec_json).auto_resume_after
            if after is not None:
                probe_us = now_us + int(after * 1_000_000)
                _MOVE_JOBS.execute(conn, {"b_id": job_id, "b_fire": probe_us, "b_run": probe_us})
                self._notify(conn, probe_us, job_id)

    # Retention ---------------------------------------------------------------------------------

    async def purge_runs(self, jobs: Sequence[tuple[str, int, int | None]]) -> int:
        def tx(conn: Connection) -> int:
            deleted = 0
            for job_id, keep, older_than_us in jobs:
                trim = {"b_job": job_id, "b_keep": keep}
                deleted += conn.execute(_TRIM_JOB_RUNS, trim).rowcount
                if older_than_us is not None:
                    age = {"b_job": job_id, "b_older": older_than_us}
                    deleted += conn.execute(_AGE_JOB_RUNS, age).rowcount
            return deleted

        return await self._write(tx) if jobs else 0

    async def purge_aged_runs(
        self, first_id: int, last_id: int, older_than_us: int, limit: int
    ) -> tuple[int, int | None]:
        def tx(conn: Connection) -> tuple[int, int | None]:
            params = {
                "b_first": first_id,
                "b_last": last_id,
                "b_older": older_than_us,
                "b_limit": limit,
            }
            deleted = conn.execute(_PURGE_AGED_RUNS, params).rowcount
            return deleted, conn.execute(select(func.max(runs.c.id))).scalar()

        return await self._write(tx)

    # Nodes -------------------------------------------------------------------------------------

    def _db_now_us(self, conn: Connection) -> int:
        """The time by the database's clock, so that every node measures leases alike."""
        return time.time_ns() // 1000

    async def heartbeat(self, node_id: str, hostname: str) -> None:
        def tx(conn: Connection) -> None:
            now_us = self._db_now_us(conn)
            values = {"id": node_id, "hostname": hostname, "started_us": now_us}
            add = self._dialect_insert(nodes).values(heartbeat_us=now_us, **values)
            # Registers the node, or again after another node took it for dead and forgot it.
            beat = add.on_conflict_do_update(index_elements=["id"], set_={"heartbeat_us": now_us})
            conn.execute(beat)

        await self._write(tx)

    async def deregister_node(self, node_id: str) -> None:
        await self._write(lambda conn: conn.execute(nodes.delete().where(nodes.c.id == node_id)))

    async def take_over(self, lease_us: int, *, retries: int) -> list[str]:
        def tx(conn: Connection) -> list[str]:
            now_us = self._db_now_us(conn)
            stale = select(nodes.c.id).where(nodes.c.heartbeat_us < now_us - lease_us)
            dead = list(conn.execute(self._lock_due(stale, nodes)).scalars())
            # Runs of nodes with no row at all (forgotten) are orphans: take them too.
            known = select(nodes.c.id).where(nodes.c.id.not_in(dead))
            self._interrupt(conn, runs.c.node_id.not_in(known), now_us, retries)
            if dead:
                conn.execute(nodes.delete().where(nodes.c.id.in_(dead)))
            return dead

        return await self._write(tx)

    async def list_nodes(self) -> list[NodeInfo]:
        def tx(conn: Connection) -> list[NodeInfo]:
            now_us = self._db_now_us(conn)
            held = (
                select(runs.c.node_id, func.count().label("running"))
                .where(IS_RUNNING)
                .group_by(runs.c.node_id)
                .subquery()
            )
            rows = conn.execute(
                select(nodes, held.c.running)
                .outerjoin(held, held.c.node_id == nodes.c.id)
                .order_by(nodes.c.id)
            ).all()
            return [
                NodeInfo(r.id, r.hostname, r.started_us, now_us - r.heartbeat_us, r.running or 0)
                for r in rows
            ]

        return await self._read(tx)

    async def get_run(self, run_id: int) -> RunRecord:
        row = await self._row_by_key(_RUN_BY_ID, b_id=run_id)
        if row is None:
            raise RunNotFound(run_id)
        return _run(row)

    async def list_runs(
        self,
        *,
        job_id: str | None,
        status: RunStatus | None,
        before_id: int | None,
        limit: int,
    ) -> list[RunRecord]:
        query = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if job_id is not None:
            query = query.where(runs.c.job_id == job_id)
        if status is not None:
            query = query.where(runs.c.status == status.value)
        if before_id is not None:
            query = query.where(runs.c.id < before_id)
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [_run(row) for row in rows]

    # Metadata ----------------------------------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        value: str | None = await self._read(
            lambda conn: conn.execute(_META_VALUE, {"b_key": key}).scalar(), short=True
        )
        return value

    async def set_meta_if_absent(self, key: str, value: str) -> str:
        # One statement, so that replicas starting together on a new database agree: the first
        # insert wins and the others, waiting for it, insert nothing and read what it wrote.
        add = self._dialect_insert(meta).values(key=key, value=value)
        add = add.on_conflict_do_nothing(index_elements=["key"])

        def tx(conn: Connection) -> str:
            conn.execute(add)
            kept: str = conn.execute(_META_VALUE, {"b_key": key}).scalar_one()
            return kept

        return await self._write(tx)


def _finish_params(node_id: str, finished: Sequence[FinishedRun]) -> list[dict[str, Any]]:
    return [
        {
            "b_id": f.run_id,
            "b_node": node_id,
            "b_status": f.status.value,
            "b_started": f.started_us,
            "b_finished": f.finished_us,
            "b_http": f.http_status,
            "b_error": f.error,
            "b_excerpt": f.response_excerpt,
        }
        for f in finished
    ]


def _in_transaction(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:
        return fn(conn)


class _WouldWait(Exception):
    """The database would have had the event loop wait (another process holds its lock), or
    failed in a way that the threads report (as ``StoreUnavailable``)."""


def _inline_transaction(conn: Connection, fn: Callable[[Connection], T]) -> T:
    """``fn`` in a transaction on a connection that never waits. On ``_WouldWait`` the
    transaction was rolled back whole, so running ``fn`` again in a thread is safe."""
    try:
        with conn.begin():
            return fn(conn)
    except DBAPIError as exc:
        if isinstance(exc, OperationalError) or _corrupt(exc):
            raise _WouldWait from exc
        raise


def _corrupt(exc: DBAPIError) -> bool:
    """The database's own files are damaged: SQLite's "malformed" and "not a database" (raised
    as its base error class), PostgreSQL's data or index corruption."""
    return type(exc.orig) is sqlite3.DatabaseError or isinstance(exc.orig, _POSTGRES_CORRUPT)


def _one_line(error: BaseException | None) -> str:
    """A driver's message on one line (PostgreSQL's span several)."""
    return " ".join(str(error).split())


def _migrate(conn: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")


# What a ``JobRecord`` is made of, in the order of its fields (``_job``).
_JOB_COLUMNS = (
    jobs.c.id,
    jobs.c.spec,
    jobs.c.next_fire_us,
    jobs.c.next_run_us,
    jobs.c.created_us,
    jobs.c.updated_us,
    jobs.c.failures,
    jobs.c.pause_reason,
)
# A queued run's own columns in the claim's read of pending runs, in the order ``_start_pending``
# unpacks them; its job's follow.
_PENDING_RUN_COLUMNS = (
    runs.c.id.label("run_id"),
    runs.c.scheduled_for_us,
    runs.c.due_us,
    runs.c.attempt,
    runs.c.manual,
)
# The statements of the dispatch path and of reads by key, built once: building one costs more
# than running it.
_JOB_BY_ID = select(*_JOB_COLUMNS).where(jobs.c.id == bindparam("b_id"))
_RUN_BY_ID = select(runs).where(runs.c.id == bindparam("b_id"))
_META_VALUE = select(meta.c.value).where(meta.c.key == bindparam("b_key"))
# A job kept from being deleted until this transaction ends (on PostgreSQL; SQLite has one
# writer), so that a run queued for it is never left behind by the delete, never to start: a
# delete under way makes this wait and find no job, a later one waits and skips the run. Other
# changes of the job need not wait.
_JOB_KEPT = (
    select(jobs.c.id)
    .where(jobs.c.id == bindparam("b_id"))
    .with_for_update(read=True, key_share=True)
)
_RUNNING = RunStatus.RUNNING.value
_MOVE_JOBS = DriverStatement(
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"))
    .values(next_fire_us=bindparam("b_fire"), next_run_us=bindparam("b_run"))
)
_START_PENDING = DriverStatement(
    update(runs)
    .where(runs.c.id == bindparam("b_id"))
    .values(status=_RUNNING, node_id=bindparam("b_node"), started_us=bindparam("b_started"))
)
# The runs among ``ids`` still held by ``node``: the ones whose outcome will be recorded.
_HELD = select(
    runs.c.id, runs.c.job_id, runs.c.scheduled_for_us, runs.c.attempt, runs.c.manual
).where(
    runs.c.id.in_(bindparam("ids", expanding=True)),
    IS_RUNNING,
    runs.c.node_id == bindparam("node"),
)
# A run is history once it has finished; queued and running ones have no finish time yet.
_FINAL = runs.c.finished_us.is_not(None)
# The id of a job's newest run beyond the ``keep`` it keeps: it and older finished ones go.
# Read from the (job_id, id) index alone.
_KEEP_BOUNDARY = (
    select(runs.c.id)
    .where(runs.c.job_id == bindparam("b_job"))
    .order_by(runs.c.id.desc())
    .offset(bindparam("b_keep"))
    .limit(1)
    .scalar_subquery()
)
_TRIM_JOB_RUNS = runs.delete().where(
    runs.c.job_id == bindparam("b_job"), runs.c.id <= _KEEP_BOUNDARY, _FINAL
)
_AGE_JOB_RUNS = runs.delete().where(
    runs.c.job_id == bindparam("b_job"), runs.c.finished_us < bindparam("b_older")
)
_PURGE_AGED_RUNS = runs.delete().where(
    runs.c.id.in_(
        select(runs.c.id)
        .where(
            runs.c.id.between(bindparam("b_first"), bindparam("b_last")),
            runs.c.finished_us < bindparam("b_older"),
            ~exists().where(jobs.c.id == runs.c.job_id, jobs.c.history_max_age_us.is_not(None)),
        )
        .order_by(runs.c.id)
        .limit(bindparam("b_limit"))
    )
)
_RESET_FAILURES = (
    update(jobs).where(jobs.c.id == bindparam("b_id"), jobs.c.failures != 0).values(failures=0)
)
_COUNT_FAILURE = (
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"), jobs.c.paused.is_(False))
    .values(failures=jobs.c.failures + 1)
    .returning(jobs.c.failures)
)
_MISS_PENDING = DriverStatement(
    update(runs)
    .where(runs.c.id == bindparam("b_id"))
    .values(
        status=RunStatus.MISSED.value,
        finished_us=bindparam("b_finished"),
        error=bindparam("b_error"),
    )
)
# Fenced: only a run still held by the finishing node changes.
_FINISH = DriverStatement(
    update(runs)
    .where(
        runs.c.id == bindparam("b_id"),
        IS_RUNNING,
        runs.c.node_id == bindparam("b_node"),
    )
    .values(
        status=bindparam("b_status"),
        started_us=bindparam("b_started"),
        finished_us=bindparam("b_finished"),
        http_status=bindparam("b_http"),
        error=bindparam("b_error"),
        response_excerpt=bindparam("b_excerpt"),
    )
)
_RUNNING_COUNTS = (
    select(runs.c.job_id, runs.c.node_id, func.count())
    .where(IS_RUNNING, runs.c.job_id.in_(bindparam("ids", expanding=True)))
    .group_by(runs.c.job_id, runs.c.node_id)
)
_NEXT_JOB_DUE = select(func.min(jobs.c.next_run_us))
_NEXT_RUN_DUE = select(func.min(runs.c.due_us)).where(IS_QUEUED, runs.c.due_us > bindparam("now"))

_DROP_TAGS = DriverStatement(job_tags.delete().where(job_tags.c.job_id == bindparam("b_id")))
_ADD_TAGS = DriverStatement(insert(job_tags))
_STATE = {
    JobState.SCHEDULED: jobs.c.paused.is_(False) & jobs.c.next_run_us.is_not(None),
    JobState.PAUSED: jobs.c.paused.is_(True) & jobs.c.pause_reason.is_(None),
    JobState.TRIPPED: jobs.c.pause_reason.is_not(None),
    JobState.FINISHED: jobs.c.paused.is_(False) & jobs.c.next_run_us.is_(None),
}

_REPLACED_ON_UPSERT = (
    "spec",
    "paused",
    "next_fire_us",
    "next_run_us",
    "updated_us",
    "failures",
    "pause_reason",
    "history_max_age_us",
)


def _set_tags(
    conn: Connection, batch: Sequence[JobRecord], *, replacing: Sequence[str] = ()
) -> None:
    """Write the tags of ``batch``'s jobs, first dropping those the jobs in ``replacing`` had."""
    if replacing:
        _DROP_TAGS.executemany(conn, [{"b_id": job_id} for job_id in replacing])
    rows = [{"tag": tag, "job_id": job.id} for job in batch for tag in job.spec.tags]
    if rows:
        _ADD_TAGS.executemany(conn, rows)


def _definition(job: JobRecord, spec_json: str | None = None) -> str:
    """A job's definition for the audit log, its secrets masked (``spec_json``: the spec as
    stored, reused when there is nothing to mask)."""
    masked = job.spec.masked()
    if masked is job.spec and spec_json is not None:
        return spec_json
    return masked.model_dump_json()


def _upsert_audit(
    by: Actor, batch: Sequence[JobRecord], values: list[dict[str, Any]], stored: dict[str, int]
) -> list[dict[str, Any]]:
    detailed = len(batch) <= _AUDIT_DEFINITIONS_UP_TO
    return [
        audit_row(
            by,
            "job.create" if stored[job.id] == job.created_us else "job.replace",
            job.id,
            _definition(job, row["spec"]) if detailed else None,
        )
        for job, row in zip(batch, values, strict=True)
    ]


def _job_values(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "spec": job.spec.model_dump_json(),
        "paused": job.spec.paused,
        "next_fire_us": job.next_fire_us,
        "next_run_us": job.next_run_us,
        "created_us": job.created_us,
        "updated_us": job.updated_us,
        "failures": job.failures,
        "pause_reason": job.pause_reason,
        "history_max_age_us": _max_age_us(job.spec),
    }


def _max_age_us(spec: JobSpec) -> int | None:
    age = spec.history.max_age if spec.history is not None else None
    return None if age is None else int(age * 1_000_000)


def _run_values(
    job_id: str,
    scheduled_for_us: int,
    status: RunStatus,
    manual: bool,
    attempt: int = 1,
    due_us: int | None = None,
) -> dict[str, Any]:
    """A new run row. A queued one is due at ``due_us``, by default its fire's time."""
    if status is RunStatus.SCHEDULED and due_us is None:
        due_us = scheduled_for_us
    return {
        "job_id": job_id,
        "scheduled_for_us": scheduled_for_us,
        "attempt": attempt,
        "status": status.value,
        "manual": manual,
        "node_id": None,
        "started_us": None,
        "finished_us": None,
        "error": None,
        "due_us": due_us,
    }


def _due_of(job: JobRecord, scheduled_for_us: int) -> int:
    """When a planned fire of ``job`` falls due: its nominal time, plus the job's jitter if it is
    the fire the job was waiting for (catch-up fires are due at once anyway)."""
    if scheduled_for_us == job.next_fire_us and job.next_run_us is not None:
        return job.next_run_us
    return scheduled_for_us


def _next_due(conn: Connection, now_us: int) -> int | None:
    """The next job or queued run to fall due. Queued runs due by now are waiting for a slot
    (see ``Claim.waiting_for_slot``), not for a time."""
    job_due = conn.execute(_NEXT_JOB_DUE).scalar()
    run_due = conn.execute(_NEXT_RUN_DUE, {"now": now_us}).scalar()
    candidates = [t for t in (job_due, run_due) if t is not None]
    return min(candidates) if candidates else None


def _job(row: Sequence[Any], spec: JobSpec | None = None) -> JobRecord:
    """The job in ``row`` (``_JOB_COLUMNS``); ``spec``: its spec, already parsed."""
    job_id, text, *bookkeeping = row
    return JobRecord(job_id, JobSpec.from_stored(text) if spec is None else spec, *bookkeeping)


def _run(row: Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        job_id=row.job_id,
        scheduled_for_us=row.scheduled_for_us,
        attempt=row.attempt,
        status=RunStatus(row.status),
        manual=row.manual,
        node_id=row.node_id,
        started_us=row.started_us,
        finished_us=row.finished_us,
        http_status=row.http_status,
        error=row.error,
        response_excerpt=row.response_excerpt,
        due_us=row.due_us if row.status == RunStatus.SCHEDULED.value else None,
    )
