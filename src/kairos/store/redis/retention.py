"""Run history purges as ``Tx`` transactions: each job's own limits, and the age limit of jobs
without one."""

from __future__ import annotations

from collections.abc import Sequence

from kairos.store.redis.tx import Tx

__all__ = ["purge_aged_runs", "purge_runs"]


async def purge_runs(tx: Tx, limits: Sequence[tuple[str, int, int | None]]) -> int:
    """``Store.purge_runs``: how many runs went."""
    deleted = 0
    for job_id, keep, older_than_us in limits:
        ids = [int(i) for i in await tx.read("ZRANGE", tx.k.job_runs(job_id), 0, -1)]
        runs = [run for run in await tx.runs(ids) if run is not None]
        boundary = max(len(runs) - keep, 0)
        for index, run in enumerate(runs):
            if run.finished_us is None:
                continue
            too_old = older_than_us is not None and run.finished_us < older_than_us
            if index < boundary or too_old:
                tx.remove_run(run)
                deleted += 1
    return deleted


async def purge_aged_runs(
    tx: Tx, *, first_id: int, window: int, older_than_us: int, limit: int
) -> tuple[int, int]:
    """Delete up to ``limit`` runs among the ``window`` run ids from ``first_id`` on that
    finished before ``older_than_us``, sparing those of jobs with their own age limit. Return
    how many went and where the next stretch begins (0 once this one reached the newest run)."""
    stretch = [
        int(i)
        for i in await tx.read("ZRANGEBYSCORE", tx.k.run_ids, first_id, "+inf", "LIMIT", 0, window)
    ]
    deleted = 0
    for run in await tx.runs(stretch):
        if deleted >= limit:
            break
        if run is None or run.finished_us is None or run.finished_us >= older_than_us:
            continue
        job = await tx.job(run.job_id)
        if job is None or job.spec.history is None or job.spec.history.max_age is None:
            tx.remove_run(run)
            deleted += 1
    return deleted, stretch[-1] + 1 if len(stretch) == window else 0
