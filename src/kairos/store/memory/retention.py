"""Run history purges on a memory store's ``Tables``: each job's own limits, and the age limit of
jobs without one."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice

from kairos.store.memory.tables import Tables

__all__ = ["purge_aged_runs", "purge_runs"]


def purge_runs(t: Tables, limits: Sequence[tuple[str, int, int | None]]) -> int:
    """``Store.purge_runs``: how many runs went."""
    deleted = 0
    for job_id, keep, older_than_us in limits:
        ids = t.job_runs.get(job_id, [])
        # Its newest ``keep`` runs stay; the finished ones older than those go.
        boundary = len(ids) - keep
        old = ids[: max(boundary, 0)]
        doomed = [run_id for run_id in old if t.runs[run_id].finished_us is not None]
        if older_than_us is not None:
            spared = set(doomed)
            for run_id in ids:
                finished_us = t.runs[run_id].finished_us
                if run_id not in spared and finished_us is not None and finished_us < older_than_us:
                    doomed.append(run_id)
        for run_id in doomed:
            t.remove_run(run_id)
        deleted += len(doomed)
    return deleted


def purge_aged_runs(
    t: Tables, *, first_id: int, window: int, older_than_us: int, limit: int
) -> tuple[int, int]:
    """Delete up to ``limit`` runs among the ``window`` run ids from ``first_id`` on that
    finished before ``older_than_us``, sparing those of jobs with their own age limit. Return how
    many went and where the next stretch begins (0 once this one reached the newest run)."""
    stretch = list(islice(t.run_ids.ascending(first_id), window))
    doomed: list[int] = []
    for run_id in stretch:
        if len(doomed) >= limit:
            break
        run = t.runs[run_id]
        if run.finished_us is None or run.finished_us >= older_than_us:
            continue
        job = t.jobs.get(run.job_id)
        if job is None or job.spec.history is None or job.spec.history.max_age is None:
            doomed.append(run_id)
    for run_id in doomed:
        t.remove_run(run_id)
    return len(doomed), stretch[-1] + 1 if len(stretch) == window else 0
