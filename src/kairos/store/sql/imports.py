"""Records imported as another store kept them (``RecordImport``), for ``SqlStore``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from kairos.errors import Conflict
from kairos.identity import ApiKeyRecord, AuditRecord, UserRecord
from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.base import SecretRecord
from kairos.store.schema import api_keys, audit, jobs, runs, secrets, user_generations, users
from kairos.store.sql import stats
from kairos.store.sql.accounts import key_values, user_values
from kairos.store.sql.jobs import set_tags
from kairos.store.sql.rows import job_values
from kairos.store.summaries import ENDED_STATUSES

__all__ = ["SqlImports"]

T = TypeVar("T")
ENDED = frozenset(ENDED_STATUSES)


class SqlImports:
    """Mixed into ``SqlStore``, which provides the transactions."""

    async def _write(self, fn: Callable[[Connection], T], *, short: bool = False) -> T:
        raise NotImplementedError

    async def _import(self, what: str, fn: Callable[[Connection], None]) -> None:
        try:
            await self._write(fn)
        except IntegrityError:
            raise Conflict(f"some of the {what} exist already: nothing was overwritten") from None

    async def import_jobs(self, batch: Sequence[JobRecord]) -> None:
        def tx(conn: Connection) -> None:
            _insert(conn, jobs, [job_values(job) for job in batch])
            set_tags(conn, batch)

        await self._import("jobs", tx)

    async def import_runs(self, batch: Sequence[RunRecord]) -> None:
        ended = [(run.job_id, run.status, run.finished_us) for run in batch if run.status in ENDED]

        def tx(conn: Connection) -> None:
            # One row at a time: ids then follow the order given on every database.
            _insert(conn, runs, map(_run_values, batch))
            stats.count_ended(conn, self, "", ended)  # type: ignore[arg-type]

        await self._import("runs", tx)

    async def import_users(self, batch: Sequence[UserRecord]) -> None:
        def tx(conn: Connection) -> None:
            _insert(conn, users, [user_values(user) for user in batch])
            for user in batch:
                _raise_generation(conn, user)

        await self._import("users", tx)

    async def import_api_keys(self, batch: Sequence[ApiKeyRecord]) -> None:
        values = [key_values(key) for key in batch]
        await self._import("API keys", lambda conn: _insert(conn, api_keys, values))

    async def import_secrets(self, batch: Sequence[SecretRecord]) -> None:
        values = [
            {
                "name": s.name,
                "ciphertext": s.ciphertext,
                "created_us": s.created_us,
                "updated_us": s.updated_us,
            }
            for s in batch
        ]
        await self._import("secrets", lambda conn: _insert(conn, secrets, values))

    async def import_audit(self, batch: Sequence[AuditRecord]) -> None:
        values = (
            {
                "at_us": r.at_us,
                "actor": r.actor,
                "action": r.action,
                "target": r.target,
                "detail": r.detail,
            }
            for r in batch
        )
        await self._import("audit records", lambda conn: _insert(conn, audit, values))


def _insert(conn: Connection, table: Any, rows: Any) -> None:
    statement = insert(table)
    for row in rows:
        conn.execute(statement, row)


def _run_values(run: RunRecord) -> dict[str, Any]:
    due_us = run.due_us
    if run.status is RunStatus.SCHEDULED and due_us is None:
        due_us = run.scheduled_for_us
    return {
        "job_id": run.job_id,
        "scheduled_for_us": run.scheduled_for_us,
        "attempt": run.attempt,
        "status": run.status.value,
        "manual": run.manual,
        "node_id": run.node_id,
        "started_us": run.started_us,
        "finished_us": run.finished_us,
        "http_status": run.http_status,
        "error": run.error,
        "response_excerpt": run.response_excerpt,
        "due_us": due_us,
    }


def _raise_generation(conn: Connection, user: UserRecord) -> None:
    """Make the last generation the name was given at least the user's."""
    table = user_generations
    last = conn.execute(select(table.c.generation).where(table.c.name == user.name)).scalar()
    if last is None:
        conn.execute(insert(table).values(name=user.name, generation=user.generation))
    elif last < user.generation:
        query = update(table).where(table.c.name == user.name).values(generation=user.generation)
        conn.execute(query)
