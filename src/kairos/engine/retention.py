"""Run retention: how much run history is kept, purged in the background in small batches.

Two sweeps, each bounded per tick so the database never sees one long delete:

- by count (and a job's own age limit): a job's history is trimmed to its newest ``max_runs``
  finished runs. Rather than count every job's runs, each finished fire of a job puts the job on
  the trim list with probability ``10 / max_runs``, so a job holds about 10 % more runs than it
  keeps at most, and no per-job state is held in memory however many jobs there are;
- by age: ``Store.purge_expired_runs`` deletes a bounded batch of finished runs older than
  ``KAIROS_RUNS_MAX_AGE`` (runs of jobs with their own limit are left to the first sweep): one
  batch a second, more while batches come back full, and less often, down to one every
  ``_IDLE_MAX_S``, while they find nothing to delete.

The audit log is kept by age alone (``KAIROS_AUDIT_MAX_AGE``), its oldest records deleted in
chunks alongside, and the counts of runs ended per minute (``Store.run_summary``) for two days,
older minutes forgotten once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack

from kairos.clock import Clock
from kairos.engine.tasks import in_background
from kairos.errors import StoreUnavailable
from kairos.models import JobSpec
from kairos.store import Store
from kairos.store.summaries import RUN_COUNT_MINUTE_US, RUN_COUNTS_KEPT_US

__all__ = ["Retention"]

log = logging.getLogger("kairos.retention")

# Work goes in chunks that each hold the (SQLite: only) writer for some milliseconds: a few jobs
# trimmed, or a few hundred aged runs deleted. Chunks follow each other with a pause while there
# is a backlog, so fires keep most of the writer; with none, the sweep looks once a second,
# then, while it deletes nothing, half as often each time down to once every _IDLE_MAX_S: an
# idle server should seldom wake (each wake-up of a process costs CPU on a virtual machine).
_IDLE_S = 1.0
_IDLE_MAX_S = 10.0
_BUSY_PAUSE_S = 0.02
_JOBS_PER_CHUNK = 4
_ROWS_PER_CHUNK = 250
_PENDING_CAP = 50_000
# Runs over the limit a job may hold before it is trimmed, as a fraction of its limit.
_SLACK = 0.1


class Retention:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        keep_per_job: int,
        max_age_s: float,
        audit_max_age_s: float = 365 * 86_400,
        random_fn: Callable[[], float] = random.random,
        on_store_error: Callable[[str], None] = lambda operation: None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._keep = keep_per_job
        self._max_age_us = int(max_age_s * 1_000_000)
        self._audit_max_age_us = int(audit_max_age_s * 1_000_000)
        self._random = random_fn
        self._on_store_error = on_store_error
        self._pending: deque[tuple[str, int, int | None]] = deque()
        self._queued: set[str] = set()
        self._next_counts_purge_us = 0

    def finished(self, job_id: str, spec: JobSpec) -> None:
        """A fire of the job ended: maybe put the job on the trim list (see the module doc)."""
        history = spec.history
        keep = history.max_runs if history and history.max_runs else self._keep
        if self._random() * max(1.0, keep * _SLACK) >= 1 or job_id in self._queued:
            return
        if len(self._pending) >= _PENDING_CAP:
            return  # a later fire of the job puts it on the list again
        # A job's own age limit is applied here; the server's, by the age sweep.
        age_us = int(history.max_age * 1_000_000) if history and history.max_age else None
        self._queued.add(job_id)
        self._pending.append((job_id, keep, age_us))

    async def start(self, stack: AsyncExitStack) -> None:
        """Sweep in the background until ``stack`` closes."""
        in_background(stack, self._loop(), name="kairos-retention")

    async def sweep(self) -> tuple[int, bool]:
        """One chunk of each sweep: return how many runs were deleted and whether more work
        (runs or audit records) is waiting."""
        now_us = self._clock.now_us()
        chunk = [self._pending.popleft() for _ in range(min(_JOBS_PER_CHUNK, len(self._pending)))]
        for job_id, _, _ in chunk:
            self._queued.discard(job_id)
        trimmed = await self._store.purge_runs(
            [(job_id, keep, None if age is None else now_us - age) for job_id, keep, age in chunk]
        )
        aged = await self._store.purge_expired_runs(now_us - self._max_age_us, _ROWS_PER_CHUNK)
        audited = await self._store.purge_audit(now_us - self._audit_max_age_us, _ROWS_PER_CHUNK)
        if now_us >= self._next_counts_purge_us:
            await self._store.purge_run_counts(now_us - RUN_COUNTS_KEPT_US)
            self._next_counts_purge_us = now_us + RUN_COUNT_MINUTE_US
        more = bool(self._pending) or aged == _ROWS_PER_CHUNK or audited == _ROWS_PER_CHUNK
        return trimmed + aged, more

    async def _loop(self) -> None:
        idle_s = _IDLE_S
        while True:
            try:
                deleted, more = await self.sweep()
            except StoreUnavailable as exc:
                self._on_store_error("retention")
                log.warning("run retention paused, the store is unavailable: %s", exc)
                deleted, more = 0, False
            if deleted:
                log.debug("purged %d runs", deleted)
            idle_s = _IDLE_S if deleted else min(_IDLE_MAX_S, idle_s * 2)
            await asyncio.sleep(_BUSY_PAUSE_S if more else idle_s)
