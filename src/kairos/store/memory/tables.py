"""``Tables``: everything a memory store holds, its indexes, and the undo log that makes each of
its operations a transaction.

Every change goes through the few methods here that keep the indexes in step with the records
(``put_job``, ``put_run``, ``put``...), and each logs how to undo itself: an operation that
raises half-way is rolled back whole (``transaction``), as a database would.
"""

from __future__ import annotations

import dataclasses
import json
from bisect import bisect_left, insort
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from kairos.identity import Actor, ApiKeyRecord, AuditRecord, UserRecord
from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.base import SecretRecord
from kairos.store.memory.ordered import OrderedKeys
from kairos.store.memory.stats import Summaries

__all__ = ["NodeRow", "Tables", "check_int64"]

K = TypeVar("K")
V = TypeVar("V")

_INT64 = range(-(2**63), 2**63)
# As long as the SQL stores' columns allow (they cut the same fields to the same length).
_AUDIT_NAME_CHARS = 200


def check_int64(*values: int | None) -> None:
    """Refuse a time a 64-bit column could not hold, as the SQL stores' drivers do."""
    for value in values:
        if value is not None and value not in _INT64:
            raise OverflowError(f"{value} does not fit in a 64-bit integer")


@dataclass(frozen=True, slots=True)
class NodeRow:
    hostname: str
    started_us: int
    heartbeat_us: int
    tasks: frozenset[str] = frozenset()


class Tables:
    """The records and their indexes. Not safe to share between threads by itself: the store
    runs one operation at a time (see ``MemoryStore``)."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobRecord] = {}
        self.job_ids: OrderedKeys[str] = OrderedKeys()
        self.due: OrderedKeys[tuple[int, str]] = OrderedKeys()
        """``(next_run_us, id)`` of every job with a next run: the claim's only scan."""
        self.tags: dict[str, OrderedKeys[str]] = {}
        self.runs: dict[int, RunRecord] = {}
        self.run_ids: OrderedKeys[int] = OrderedKeys()
        self.job_runs: dict[str, list[int]] = {}
        """Each job's run ids, ascending."""
        self.fires: dict[tuple[str, int, int], int] = {}
        """The ledger's key (job, scheduled time, attempt) -> run id: one run per fire."""
        self.queued: OrderedKeys[tuple[int, int]] = OrderedKeys()
        """``(due_us, id)`` of every queued (``scheduled``) run."""
        self.running_by_node: dict[str, set[int]] = {}
        self.running_by_job: dict[str, int] = {}
        self.summaries = Summaries()
        self.nodes: dict[str, NodeRow] = {}
        self.meta: dict[str, str] = {}
        self.users: dict[str, UserRecord] = {}
        self.generations: dict[str, int] = {}
        """The last generation each user name was ever given, kept when its user goes."""
        self.api_keys: dict[str, ApiKeyRecord] = {}
        self.secrets: dict[str, SecretRecord] = {}
        self.audit: dict[int, AuditRecord] = {}
        self.audit_ids: OrderedKeys[int] = OrderedKeys()
        # Ids are never given twice, not even those of a rolled-back transaction.
        self._last_run_id = 0
        self._last_audit_id = 0
        self._undo: list[Callable[[], None]] | None = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Undo every change made inside if it raises."""
        undo: list[Callable[[], None]] = []
        self._undo = undo
        try:
            yield
        except BaseException:
            self._undo = None  # undoing logs nothing
            for step in reversed(undo):
                step()
            raise
        finally:
            self._undo = None

    def _logged(self, step: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append(step)

    # Jobs --------------------------------------------------------------------------------------

    def put_job(self, job: JobRecord) -> None:
        """Add or replace a job."""
        old = self.jobs.get(job.id)
        self._index_job(job.id, old, job)
        self.jobs[job.id] = job
        self._logged(lambda: self._restore_job(job.id, old))

    def remove_job(self, job_id: str) -> JobRecord | None:
        old = self.jobs.pop(job_id, None)
        if old is not None:
            self._index_job(job_id, old, None)
            self._logged(lambda: self._restore_job(job_id, old))
        return old

    def _restore_job(self, job_id: str, old: JobRecord | None) -> None:
        self._index_job(job_id, self.jobs.get(job_id), old)
        if old is None:
            del self.jobs[job_id]
        else:
            self.jobs[job_id] = old

    def _index_job(self, job_id: str, old: JobRecord | None, new: JobRecord | None) -> None:
        if old is None:
            self.job_ids.add(job_id)
        elif new is None:
            self.job_ids.discard(job_id)
        old_due = None if old is None else old.next_run_us
        new_due = None if new is None else new.next_run_us
        if old_due != new_due:
            if old_due is not None:
                self.due.discard((old_due, job_id))
            if new_due is not None:
                self.due.add((new_due, job_id))
        old_tags = set() if old is None else set(old.spec.tags)
        new_tags = set() if new is None else set(new.spec.tags)
        for tag in old_tags - new_tags:
            tagged = self.tags[tag]
            tagged.discard(job_id)
            if not tagged:
                del self.tags[tag]
        for tag in new_tags - old_tags:
            self.tags.setdefault(tag, OrderedKeys()).add(job_id)
        self.summaries.job_changed(job_id, old, new)

    # Runs --------------------------------------------------------------------------------------

    def new_run_id(self) -> int:
        self._last_run_id += 1
        return self._last_run_id

    def put_run(self, run: RunRecord) -> None:
        """Add or replace a run (a queued one must have its ``due_us``)."""
        old = self.runs.get(run.id)
        self._index_run(old, run)
        self.runs[run.id] = run
        self._logged(lambda: self._restore_run(run, old))
        self.summaries.run_changed(old, run, self._logged)

    def remove_run(self, run_id: int) -> None:
        old = self.runs.pop(run_id)
        self._index_run(old, None)
        self._logged(lambda: self._restore_run(old, old, absent=True))
        self.summaries.run_changed(old, None, self._logged)

    def _restore_run(self, run: RunRecord, old: RunRecord | None, *, absent: bool = False) -> None:
        self._index_run(None if absent else self.runs[run.id], old)
        if old is None:
            del self.runs[run.id]
        else:
            self.runs[run.id] = old

    def _index_run(self, old: RunRecord | None, new: RunRecord | None) -> None:
        some = new if new is not None else old
        assert some is not None
        run_id, job_id = some.id, some.job_id
        if old is None:
            self.run_ids.add(run_id)
            ids = self.job_runs.setdefault(job_id, [])
            if not ids or ids[-1] < run_id:
                ids.append(run_id)
            else:
                insort(ids, run_id)
            self.fires[some.job_id, some.scheduled_for_us, some.attempt] = run_id
        elif new is None:
            self.run_ids.discard(run_id)
            ids = self.job_runs[job_id]
            del ids[bisect_left(ids, run_id)]
            if not ids:
                del self.job_runs[job_id]
            del self.fires[old.job_id, old.scheduled_for_us, old.attempt]
        self._index_status(old, new, run_id, job_id)

    def _index_status(
        self, old: RunRecord | None, new: RunRecord | None, run_id: int, job_id: str
    ) -> None:
        old_due = _queued_due(old)
        new_due = _queued_due(new)
        if old_due != new_due:
            if old_due is not None:
                self.queued.discard((old_due, run_id))
            if new_due is not None:
                self.queued.add((new_due, run_id))
        old_node = _running_node(old)
        new_node = _running_node(new)
        if old_node != new_node:
            if old_node is not None:
                held = self.running_by_node[old_node]
                held.discard(run_id)
                if not held:
                    del self.running_by_node[old_node]
                self.running_by_job[job_id] -= 1
                if not self.running_by_job[job_id]:
                    del self.running_by_job[job_id]
            if new_node is not None:
                self.running_by_node.setdefault(new_node, set()).add(run_id)
                self.running_by_job[job_id] = self.running_by_job.get(job_id, 0) + 1

    def forget_last_call(self, job_id: str) -> None:
        """The job was deleted: its summary keeps its counts, not its last call."""
        self.summaries.forget_last(job_id, self._logged)

    def purge_run_counts(self, older_than_us: int) -> None:
        self.summaries.purge_minutes(older_than_us, self._logged)

    # Other tables ------------------------------------------------------------------------------

    def put(self, table: dict[K, V], key: K, value: V) -> None:
        """Set ``table[key]`` (a table without an index of its own)."""
        missing = key not in table
        old = table.get(key)
        table[key] = value
        self._logged(lambda: _restore(table, key, old, missing))

    def drop(self, table: dict[K, V], key: K) -> V | None:
        if key not in table:
            return None
        old = table.pop(key)
        self._logged(lambda: table.__setitem__(key, old))
        return old

    def write_audit(self, by: Actor, action: str, target: str, detail: Any = None) -> None:
        """Record a change, made in this transaction. ``detail`` is kept as JSON (a string as
        it is)."""
        if detail is not None and not isinstance(detail, str):
            detail = json.dumps(detail, separators=(",", ":"))
        name, target = by.name[:_AUDIT_NAME_CHARS], target[:_AUDIT_NAME_CHARS]
        self.add_audit_record(AuditRecord(0, by.at_us, name, action, target, detail))

    def add_audit_record(self, record: AuditRecord) -> None:
        """Add ``record`` under a new id (its own is ignored)."""
        self._last_audit_id += 1
        audit_id = self._last_audit_id
        self.audit[audit_id] = dataclasses.replace(record, id=audit_id)
        self.audit_ids.add(audit_id)
        self._logged(lambda: self.remove_audit(audit_id))

    def remove_audit(self, audit_id: int) -> None:
        old = self.audit.pop(audit_id)
        self.audit_ids.discard(audit_id)
        self._logged(lambda: self._restore_audit(old))

    def _restore_audit(self, record: AuditRecord) -> None:
        self.audit[record.id] = record
        self.audit_ids.add(record.id)


def _restore(table: dict[K, V], key: K, old: V | None, missing: bool) -> None:
    if missing:
        del table[key]
    else:
        table[key] = old  # type: ignore[assignment]  # present before: ``old`` is a V


def _queued_due(run: RunRecord | None) -> int | None:
    if run is None or run.status is not RunStatus.SCHEDULED:
        return None
    return run.due_us


def _running_node(run: RunRecord | None) -> str | None:
    if run is None or run.status is not RunStatus.RUNNING:
        return None
    return run.node_id
