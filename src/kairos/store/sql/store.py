"""``SqlStore``: the store over SQLAlchemy Core, shared by every relational backend.

Statements run on synchronous connections in worker threads so the event loop never blocks on
the database (``connections``). Writes go through one executor per store (SQLite has a single
writer anyway); backends say how many writer threads they allow and how due rows are locked.
The transactions themselves are functions of a connection, one module per concern: ``jobs``,
``ledger``, ``breaker``, ``nodes``, ``retention``; the methods here only run them.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Select, Table, bindparam, insert, select, union_all
from sqlalchemy.exc import DBAPIError, IntegrityError

from kairos.errors import JobExists, JobNotFound, RunNotFound, StoreUnavailable
from kairos.identity import Actor
from kairos.models import JobRecord, JobState, RunRecord, RunStatus
from kairos.store.base import JobQuery, NodeInfo, Store
from kairos.store.claims import Claim, ClaimPolicy, FinishedRun
from kairos.store.driver import DriverStatement
from kairos.store.schema import CAN_CALL, IS_QUEUED, jobs, meta, runs
from kairos.store.specs import SpecCache
from kairos.store.sql import jobs as job_tx
from kairos.store.sql import ledger, nodes, retention, stats
from kairos.store.sql.accounts import SqlAccounts
from kairos.store.sql.connections import SqlConnections, one_line
from kairos.store.sql.dialect import SqlDialect
from kairos.store.sql.imports import SqlImports
from kairos.store.sql.rows import JOB_COLUMNS, job_from_row, run_from_row
from kairos.store.summaries import JobRunCounts, RunSummary

__all__ = ["SqlStore"]

_MIGRATIONS = Path(__file__).parent.parent / "migrations"
# A batch of up to this many jobs is a short write.
_SHORT_BATCH = 16
# ``check_writable``'s probe: a value larger than a database page, so that writing it needs a free
# page or the file to grow, as new runs do; written in a savepoint rolled back at once. Random,
# so that no backend stores it compressed into less.
_PROBE_ROOM_KEY = "readiness_probe_room"
_PROBE_ROOM = secrets.token_hex(4096)
_PROBE_KEY = "readiness_probe"
_PROBE_EVERY_S = 1.0
_RUN_BY_ID = select(runs).where(runs.c.id == bindparam("b_id"))


class SqlStore(SqlConnections, SqlAccounts, SqlImports, Store):
    """A store on one SQLAlchemy engine for writes and one for reads (they may be the same);
    see ``SqlConnections`` for the ``inline`` engines."""

    _dialect: SqlDialect
    """The backend's: how its database spells the statements that differ."""
    purge_window_ids = 10_000
    """How many run ids one ``purge_expired_runs`` reads through at most."""

    def __init__(
        self, writer: Engine, reader: Engine, inline: tuple[Engine, Engine] | None = None
    ) -> None:
        super().__init__(writer, reader, inline)
        self._specs = SpecCache()
        self._probing = asyncio.Lock()
        self._next_probe = 0.0
        self._probe_failure: str | None = None
        self._purge_next_id = 0
        dialect = self._dialect
        # Atomic even when two nodes create one new id at once. Built once: it is on the hot path.
        self._upsert_jobs = dialect.returning(
            dialect.upsert(jobs, ["id"], replace=job_tx.REPLACED_ON_UPSERT),
            jobs.c.id,
            jobs.c.created_us,
        )
        self._upsert_job = DriverStatement(self._upsert_jobs)
        self._insert_runs = dialect.insert_ignoring_duplicates(runs, ledger.RUN_KEY)
        self._stats = stats.SqlStatStatements(dialect)
        self._finish_runs = dialect.update_rows(
            runs,
            set_=ledger.FINISHED_COLUMNS,
            where=ledger.FINISHED_WHERE,
            returning=ledger.FINISHED_RETURNING,
        )
        self._insert_claimed_runs = DriverStatement(
            dialect.returning(
                self._insert_runs, runs.c.id, runs.c.job_id, runs.c.scheduled_for_us, runs.c.status
            )
        )
        self._due_jobs = DriverStatement(
            self._lock_due(
                select(*JOB_COLUMNS)
                .where(jobs.c.next_run_us <= bindparam("due_by"), CAN_CALL)
                .order_by(jobs.c.next_run_us)
                .limit(bindparam("limit")),
                jobs,
            )
        )
        self._due_pending = DriverStatement(
            self._lock_due(
                select(*ledger.PENDING_RUN_COLUMNS, *JOB_COLUMNS)
                .join(jobs, jobs.c.id == runs.c.job_id)
                .where(IS_QUEUED, runs.c.due_us <= bindparam("due_by"), CAN_CALL)
                .order_by(runs.c.due_us)
                .limit(bindparam("limit")),
                runs,
            )
        )

    # Backend hooks (see ``Backend``) -----------------------------------------------------------

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

    def _crashed(self, conn: Connection, node_ids: set[str], me: str) -> set[str]:
        """Those of ``node_ids`` known (to ``me``) to have crashed, before their lease says so.
        A backend that cannot tell knows none."""
        return set()

    def _gone(self, conn: Connection, node_ids: set[str]) -> set[str]:
        """Those of ``node_ids`` whose process certainly died (the backend can tell, as with a
        lock only the process held and nothing else drops): their runs are taken over at once,
        before their lease runs out. A backend that cannot be sure knows none."""
        return set()

    def _db_now_us(self, conn: Connection) -> int:
        """The time by the database's clock, so that every node measures leases alike."""
        return time.time_ns() // 1000

    def _check_server(self, conn: Connection) -> None:
        """Raise ``StoreUnavailable`` (with no cause) naming what is needed if the database
        server is one this backend cannot run on (too old)."""

    def _before_migrations(self, conn: Connection) -> None:
        """Serialise concurrent migrations where several processes may start at once."""

    def _after_migrations(self, conn: Connection) -> None:
        """Undo what ``_before_migrations`` did that outlives the transaction (whether the
        migrations succeeded or not)."""

    def _due_job(self, row: Sequence[Any]) -> JobRecord:
        """``job_from_row`` with the parsed spec from the claims' ``SpecCache``."""
        return job_from_row(row, self._specs.parse(row[1]))

    # Lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        def migrate(conn: Connection) -> None:
            self._check_server(conn)
            self._before_migrations(conn)
            try:
                _migrate(conn)
            finally:
                self._after_migrations(conn)

        try:
            await self._write(migrate)
        except (StoreUnavailable, DBAPIError) as exc:
            if isinstance(exc, StoreUnavailable) and exc.__cause__ is None:
                raise  # the backend's own verdict on the server, worded already
            cause = exc.__cause__ if isinstance(exc, StoreUnavailable) else exc
            raise StoreUnavailable(self._cannot_open(getattr(cause, "orig", cause))) from exc

    def _cannot_open(self, error: BaseException | None) -> str:
        """What ``open`` says when the database refuses ``error``: which database, what is
        wrong, what to do, on one line."""
        return f"cannot open the database: {one_line(error)}"

    async def close(self) -> None:
        self._close_connections()

    async def check_writable(self) -> None:
        async with self._probing:
            if time.monotonic() >= self._next_probe:
                self._probe_failure = await self._probe()
                self._next_probe = time.monotonic() + _PROBE_EVERY_S
        if self._probe_failure is not None:
            raise StoreUnavailable(self._probe_failure)

    async def _probe(self) -> str | None:
        """Why the store cannot be written now (None: it can)."""
        stamp = self._dialect.upsert(meta, ["key"], replace=["value"])
        stamp = stamp.values(key=_PROBE_KEY, value=str(time.time_ns()))

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
            return f"the database cannot be written: {one_line(exc.orig)}"
        return None

    # Jobs --------------------------------------------------------------------------------------

    async def insert_job(self, job: JobRecord, *, by: Actor | None = None) -> None:
        try:
            await self._write(partial(job_tx.insert_job, db=self, job=job, by=by), short=True)
        except IntegrityError:
            raise JobExists(job.id) from None

    async def upsert_jobs(
        self, batch: Sequence[JobRecord], *, by: Actor | None = None
    ) -> dict[str, int]:
        if not batch:
            return {}
        tx = partial(job_tx.upsert_jobs, db=self, batch=batch, by=by)
        return await self._write(tx, short=len(batch) <= _SHORT_BATCH)

    async def apply_jobs(
        self,
        upserts: Sequence[JobRecord],
        deletes: Sequence[str],
        *,
        by: Actor,
        summary: dict[str, object],
    ) -> None:
        tx = partial(
            job_tx.apply_jobs, db=self, upserts=upserts, deletes=deletes, by=by, summary=summary
        )
        await self._write(tx)

    async def update_job(
        self,
        job: JobRecord,
        *,
        expected_updated_us: int,
        by: Actor | None = None,
        action: str = "job.update",
    ) -> None:
        tx = partial(
            job_tx.update_job,
            db=self,
            job=job,
            expected_updated_us=expected_updated_us,
            by=by,
            action=action,
        )
        await self._write(tx, short=True)

    async def get_job(self, job_id: str) -> JobRecord:
        row = await self._row_by_key(job_tx.JOB_BY_ID, b_id=job_id)
        if row is None:
            raise JobNotFound(job_id)
        return job_from_row(row)

    async def list_jobs(self, query: JobQuery, limit: int) -> list[JobRecord]:
        statements = job_tx.list_jobs(query)
        return await self._read(partial(job_tx.read_page, statements=statements, limit=limit))

    async def count_jobs(self) -> dict[JobState, int]:
        rows = await self._read(lambda conn: conn.execute(job_tx.COUNT_JOBS).all())
        return job_tx.counts(rows)

    async def count_jobs_by_task(self) -> dict[str, int]:
        rows = await self._read(lambda conn: conn.execute(job_tx.COUNT_BY_TASK).all())
        return {task: n for task, n in rows}

    async def delete_job(
        self, job_id: str, *, purge_runs: bool = False, by: Actor | None = None
    ) -> None:
        tx = partial(job_tx.delete_job, db=self, job_id=job_id, purge_runs=purge_runs, by=by)
        await self._write(tx, short=not purge_runs)

    # Runs --------------------------------------------------------------------------------------

    async def add_manual_run(
        self, job_id: str, scheduled_for_us: int, *, by: Actor | None = None
    ) -> RunRecord:
        tx = partial(
            ledger.add_manual_run, db=self, job_id=job_id, scheduled_for_us=scheduled_for_us, by=by
        )
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
        tx = partial(
            ledger.claim,
            db=self,
            now_us=now_us,
            ahead_us=ahead_us,
            limit=limit,
            node_id=node_id,
            policy=policy,
            finished=finished,
        )
        return await self._write(tx)

    async def finish_runs(self, node_id: str, finished: Sequence[FinishedRun]) -> dict[int, str]:
        if not finished:
            return {}
        return await self._write(
            partial(ledger.finish, db=self, node_id=node_id, finished=finished)
        )

    async def interrupt_running(
        self, node_id: str | None, *, retries: int, policy: ClaimPolicy
    ) -> int:
        tx = partial(
            ledger.interrupt_running, db=self, node_id=node_id, retries=retries, policy=policy
        )
        return await self._write(tx)

    async def cancel_run(self, run_id: int, *, by: Actor) -> RunRecord:
        tx = partial(ledger.cancel_run, db=self, run_id=run_id, by=by)
        return await self._write(tx, short=True)

    async def cancelled_among(self, run_ids: Sequence[int]) -> set[int]:
        if not run_ids:
            return set()
        query = select(runs.c.id).where(
            runs.c.id.in_(run_ids), runs.c.status == RunStatus.CANCELLED.value
        )
        return set(await self._read(lambda conn: conn.execute(query).scalars().all()))

    async def get_run(self, run_id: int) -> RunRecord:
        row = await self._row_by_key(_RUN_BY_ID, b_id=run_id)
        if row is None:
            raise RunNotFound(run_id)
        return run_from_row(row)

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
        return [run_from_row(row) for row in rows]

    async def newest_runs(self, job_ids: Sequence[str], limit: int) -> dict[str, list[RunRecord]]:
        found: dict[str, list[RunRecord]] = {job_id: [] for job_id in job_ids}
        if not found:
            return found
        # One statement: a part per job, each reading only its newest runs off (job_id, id).
        parts = [
            select(
                select(runs)
                .where(runs.c.job_id == job_id)
                .order_by(runs.c.id.desc())
                .limit(limit)
                .subquery()
            )
            for job_id in found
        ]
        rows = await self._read(lambda conn: conn.execute(union_all(*parts)).all())
        for row in rows:
            found[row.job_id].append(run_from_row(row))
        for listed in found.values():
            listed.sort(key=lambda run: run.id, reverse=True)
        return found

    # Retention ---------------------------------------------------------------------------------

    async def purge_runs(self, jobs: Sequence[tuple[str, int, int | None]]) -> int:
        return await self._write(partial(retention.purge_runs, db=self, limits=jobs)) if jobs else 0

    async def purge_expired_runs(self, older_than_us: int, limit: int) -> int:
        # One window of run ids a call, from the oldest to the newest and round again: each
        # delete reads a bounded stretch of the primary key, however many runs there are.
        first = self._purge_next_id
        last = first + self.purge_window_ids - 1
        tx = partial(
            retention.purge_aged_runs,
            db=self,
            first_id=first,
            last_id=last,
            older_than_us=older_than_us,
            limit=limit,
        )
        deleted, highest = await self._write(tx)
        if deleted < limit:
            self._purge_next_id = 0 if highest is None or last >= highest else last + 1
        return deleted

    # Summaries ---------------------------------------------------------------------------------

    async def run_summary(self, since_us: Sequence[int], limit: int) -> RunSummary:
        return await self._read(partial(stats.run_summary, since_us=since_us, limit=limit))

    async def job_run_counts(self, job_ids: Sequence[str]) -> dict[str, JobRunCounts]:
        return await self._read(partial(stats.job_run_counts, job_ids=job_ids))

    async def purge_run_counts(self, older_than_us: int) -> None:
        await self._write(partial(stats.purge_run_counts, older_than_us=older_than_us))

    # Nodes and metadata ------------------------------------------------------------------------

    async def heartbeat(
        self, node_id: str, hostname: str, tasks: frozenset[str] = frozenset()
    ) -> None:
        beat = partial(nodes.heartbeat, db=self, node_id=node_id, hostname=hostname, tasks=tasks)
        await self._write(beat)

    async def deregister_node(self, node_id: str) -> None:
        await self._write(partial(nodes.deregister, node_id=node_id))

    async def take_over(self, lease_us: int, *, retries: int, policy: ClaimPolicy) -> list[str]:
        tx = partial(nodes.take_over, db=self, lease_us=lease_us, retries=retries, policy=policy)
        return await self._write(tx)

    async def list_nodes(self) -> list[NodeInfo]:
        return await self._read(partial(nodes.list_nodes, db=self))

    async def get_meta(self, key: str) -> str | None:
        value: str | None = await self._read(
            lambda conn: conn.execute(nodes.META_VALUE, {"b_key": key}).scalar(), short=True
        )
        return value

    async def set_meta_if_absent(self, key: str, value: str) -> str:
        return await self._write(partial(nodes.set_meta_if_absent, db=self, key=key, value=value))


def _migrate(conn: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
