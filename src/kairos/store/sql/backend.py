"""``Backend``: what the transaction bodies of ``SqlStore`` (its ledger, jobs, breaker and nodes
modules) ask of the store they run in: the backend's hooks, and the statements it built once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Connection, Select, Table

from kairos.models import JobRecord
from kairos.store.driver import DriverStatement
from kairos.store.sql.batches import RowsStatement
from kairos.store.sql.dialect import SqlDialect

if TYPE_CHECKING:
    from kairos.store.sql.stats import SqlStatStatements

__all__ = ["Backend"]


class Backend(Protocol):
    _dialect: SqlDialect
    _due_jobs: DriverStatement
    _due_pending: DriverStatement
    _insert_claimed_runs: DriverStatement
    _upsert_jobs: Any
    _upsert_job: DriverStatement
    _insert_runs: Any
    """Runs, skipping those the ledger holds already."""
    _stats: SqlStatStatements
    _finish_runs: RowsStatement
    """Outcomes recorded, fenced (see ``ledger.FINISHED_WHERE``)."""

    def _lock_due(self, query: Select[Any], of: Table) -> Select[Any]: ...

    def _notify(self, conn: Connection, due_us: int | None, job_id: str | None = None) -> None: ...

    def _notify_many(
        self, conn: Connection, notices: list[tuple[int | None, str | None]]
    ) -> None: ...

    def _crashed(self, conn: Connection, node_ids: set[str], me: str) -> set[str]: ...

    def _gone(self, conn: Connection, node_ids: set[str]) -> set[str]: ...

    def _db_now_us(self, conn: Connection) -> int: ...

    def _due_job(self, row: Sequence[Any]) -> JobRecord: ...
