"""Run retention: how much run history is kept, purged in the background in small batches.

Two sweeps, each bounded per tick so the database never sees one long delete:

- by count (and a job's own age limit): a job's history is trimmed to its newest ``max_runs``
  finished runs. Rather than count every job's runs, each finished fire of a job puts the job on
  the trim list with probability ``10 / max_runs``, so a job holds about 10 % more runs than it
  keeps at most, and no per-job state is held in memory however many jobs there are;
- by age: a window of run ids at a time, from the oldest to the newest and round again, deletes
  finished runs older than ``KAIROS_RUNS_MAX_AGE`` (runs of jobs with their own limit are left
  to the first sweep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable

from kairos.clock import Clock
from kairos.errors import StoreUnavailable
from kairos.models import JobSpec
from kairos.store import Store

__all__ = ["Retention"]

log = logging.getLogger("kairos.retention")

# Sized so one tick holds the (SQLite: only) writer for a few milliseconds, while the age sweep
# still outruns 4,000 new runs a second and the trim keeps up with 10,000 fires a second.
_TICK_S = 1.0
_JOBS_PER_TICK = 100
_IDS_PER_TICK = 10_000
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
        random_fn: Callable[[], float] = random.random,
        ids_per_tick: int = _IDS_PER_TICK,
    ) -> None:
        self._store = store
        self._clock = clock
        self._keep = keep_per_job
        self._max_age_us = int(max_age_s * 1_000_000)
        self._random = random_fn
        self._ids_per_tick = ids_per_tick
        self._pending: deque[tuple[str, int, int]] = deque()
        self._queued: set[str] = set()
        self._next_id = 0
        self._task: asyncio.Task[None] | None = None

    def finished(self, job_id: str, spec: JobSpec) -> None:
        """A fire of the job ended: maybe put the job on the trim list (see the module doc)."""
        history = spec.history
        keep = history.max_runs if history and history.max_runs else self._keep
        if self._random() * max(1.0, keep * _SLACK) >= 1 or job_id in self._queued:
            return
        if len(self._pending) >= _PENDING_CAP:
            return  # a later fire of the job puts it on the list again
        age_us = int(history.max_age * 1_000_000) if history and history.max_age else None
        self._queued.add(job_id)
        self._pending.append((job_id, keep, age_us or self._max_age_us))

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="kairos-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sweep(self) -> int:
        """One tick of both sweeps; return how many runs were deleted."""
        now_us = self._clock.now_us()
        batch = [self._pending.popleft() for _ in range(min(_JOBS_PER_TICK, len(self._pending)))]
        for job_id, _, _ in batch:
            self._queued.discard(job_id)
        trimmed = await self._store.purge_runs(
            [(job_id, keep, now_us - age_us) for job_id, keep, age_us in batch]
        )
        first = self._next_id
        last = first + self._ids_per_tick - 1
        aged, highest = await self._store.purge_aged_runs(first, last, now_us - self._max_age_us)
        self._next_id = 0 if highest is None or last >= highest else last + 1
        return trimmed + aged

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(_TICK_S)
            try:
                deleted = await self.sweep()
            except StoreUnavailable as exc:
                log.warning("run retention skipped a beat, the store is unavailable: %s", exc)
                continue
            if deleted:
                log.debug("purged %d runs", deleted)
