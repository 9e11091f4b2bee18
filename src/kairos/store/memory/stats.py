"""``Summaries``: a memory store's summaries of its run ledger (``RunStats``), kept in step by
``Tables`` as runs change, and read for the overview without going through the runs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.memory.ordered import OrderedKeys
from kairos.store.summaries import (
    CALL_OUTCOMES,
    ENDED_STATUSES,
    FAILING_STATUSES,
    JobRunCounts,
    empty_counts,
    minute_of,
)

__all__ = ["Summaries"]

_ENDED = frozenset(ENDED_STATUSES)
_FAILING = frozenset(FAILING_STATUSES)
_Log = Callable[[Callable[[], None]], None]
"""Logs how to undo a change (``Tables._logged``)."""


class Summaries:
    def __init__(self) -> None:
        self.minutes: dict[int, Counter[RunStatus]] = {}
        """Runs ended per minute (of their ``finished_us``), by status."""
        self.jobs: dict[str, JobRunCounts] = {}
        self.failing: OrderedKeys[tuple[int, str]] = OrderedKeys()
        """``(last_ended_us, job_id)`` of each job whose last call failed."""
        self.tripped: OrderedKeys[str] = OrderedKeys()
        """The ids of the jobs the circuit breaker paused."""

    def job_changed(self, job_id: str, old: JobRecord | None, new: JobRecord | None) -> None:
        """Keep the index of tripped jobs (called as the job's other indexes are kept, so
        undone alike)."""
        if old is not None and old.pause_reason is not None:
            self.tripped.discard(job_id)
        if new is not None and new.pause_reason is not None:
            self.tripped.add(job_id)

    def run_changed(self, old: RunRecord | None, new: RunRecord | None, log: _Log) -> None:
        """Count a run that ended, or that went (from its job's counts only)."""
        was = old is not None and old.status in _ENDED
        ended = new is not None and new.status in _ENDED
        if was and old is not None and (new is None or new.status is not old.status):
            self._add(old.job_id, old.status, -1, None, log)
        if ended and new is not None and not (was and old is not None and old.status is new.status):
            self._add(new.job_id, new.status, 1, new.finished_us, log)

    def forget_last(self, job_id: str, log: _Log) -> None:
        """The job was deleted: it has no last call any more (its counts stay with its runs)."""
        stats = self.jobs.get(job_id)
        if stats is not None and stats.last_status is not None:
            self._set(job_id, JobRunCounts(stats.counts), log)

    def _add(
        self, job_id: str, status: RunStatus, change: int, finished_us: int | None, log: _Log
    ) -> None:
        old = self.jobs.get(job_id) or JobRunCounts(empty_counts())
        counts = {**old.counts, status: old.counts[status] + change}
        last, last_us = old.last_status, old.last_ended_us
        if change > 0 and finished_us is not None:
            self._add_minute(minute_of(finished_us), status, change, log)
            if status in CALL_OUTCOMES and (last_us is None or finished_us >= last_us):
                last, last_us = status, finished_us
        self._set(job_id, JobRunCounts(counts, last, last_us), log)

    def _add_minute(self, minute_us: int, status: RunStatus, change: int, log: _Log) -> None:
        counted = self.minutes.setdefault(minute_us, Counter())
        counted[status] += change
        log(lambda: self._add_minute(minute_us, status, -change, log))

    def _set(self, job_id: str, stats: JobRunCounts | None, log: _Log) -> None:
        old = self.jobs.get(job_id)
        for entry, add in ((old, False), (stats, True)):
            if entry is not None and entry.last_status in _FAILING:
                assert entry.last_ended_us is not None
                key = (entry.last_ended_us, job_id)
                if add:
                    self.failing.add(key)
                else:
                    self.failing.discard(key)
        if stats is None:
            del self.jobs[job_id]
        else:
            self.jobs[job_id] = stats
        log(lambda: self._set(job_id, old, log))

    def ended_since(self, since_us: int) -> dict[RunStatus, int]:
        counts = empty_counts()
        first = minute_of(since_us)
        for minute_us, counted in self.minutes.items():
            if minute_us >= first:
                for status, n in counted.items():
                    counts[status] += n
        return counts

    def failing_jobs(self, exists: Callable[[str], bool], limit: int) -> tuple[int, list[str]]:
        """How many existing jobs are failing, and the first ``limit``, the latest failure
        first."""
        found = [job_id for _, job_id in self.failing.descending() if exists(job_id)]
        return len(found), found[:limit]

    def counts_of(self, job_ids: Sequence[str]) -> dict[str, JobRunCounts]:
        return {job_id: self.jobs.get(job_id) or JobRunCounts(empty_counts()) for job_id in job_ids}

    def purge_minutes(self, older_than_us: int, log: _Log) -> None:
        first = minute_of(older_than_us)
        for minute_us in [m for m in self.minutes if m < first]:
            self._drop_minute(minute_us, log)

    def _drop_minute(self, minute_us: int, log: _Log) -> None:
        counted = self.minutes.pop(minute_us)
        log(lambda: self.minutes.__setitem__(minute_us, counted))
