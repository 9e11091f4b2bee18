"""The run ledger's summaries (``RunStats``) in Redis: written by ``Tx`` as runs end and go and
as jobs are tripped, in the same ``MULTI``, and by the claim's commit (``scripts.COMMIT``, which
mirrors ``count``) for the runs it ends, in the same script; read for the overview off a few keys.

- ``ended-minutes``, a hash: ``<minute_us>:<status>`` -> runs ended in that minute (of their
  ``finished_us``); minutes older than two days are purged;
- ``job-stats:<job>``, a hash per job: its ended runs by status, and ``last``/``last_us``, how
  and when its last call ended (the last such outcome committed);
- ``failing``, a sorted set: the jobs whose last call failed, by when; a job deleted leaves it
  (a run still in flight then may put it back as it ends: until its id is used again, such a
  job counts as failing);
- ``tripped``, a sorted set: the ids of the jobs the circuit breaker paused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio import Redis

from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.redis import codec
from kairos.store.redis.keys import Keys
from kairos.store.summaries import (
    CALL_OUTCOMES,
    ENDED_STATUSES,
    FAILING_STATUSES,
    JobRunCounts,
    RunSummary,
    empty_counts,
    minute_of,
)

__all__ = [
    "count",
    "counted",
    "job_changed",
    "job_deleted",
    "job_run_counts",
    "purge_run_counts",
    "rebuild",
    "run_changed",
    "run_summary",
]

_ENDED = frozenset(ENDED_STATUSES)
_FAILING = frozenset(FAILING_STATUSES)
_CHUNK = 1000
_Write = Any
"""``Tx.write``: queue a command of the transaction."""


def run_changed(write: _Write, k: Keys, old: RunRecord | None, new: RunRecord | None) -> None:
    """Count a run that ended, or that went (from its job's counts only)."""
    was = old is not None and old.status in _ENDED
    if old is not None and was and (new is None or new.status is not old.status):
        write("HINCRBY", k.job_stats(old.job_id), old.status.value, -1)
    if new is None or (was and old and old.status is new.status):
        return
    tally = counted(new)
    if tally is not None:
        count(write, k, new.job_id, tally)


def counted(run: RunRecord) -> list[str] | None:
    """How ``run`` counts as it ends (None: it has not ended): its status; its field of
    ``ended-minutes`` ('': it has no end time); when its call ended ('': it is no call's outcome,
    or has no end time); and '1' if that call failed (else ''). ``count`` writes it, and
    ``scripts.COMMIT`` for the runs a claim ends."""
    status = run.status
    if status not in _ENDED:
        return None
    at_us = run.finished_us
    if at_us is None:
        return [status.value, "", "", ""]
    minute = f"{minute_of(at_us)}:{status.value}"
    if status not in CALL_OUTCOMES:
        return [status.value, minute, "", ""]
    return [status.value, minute, str(at_us), "1" if status in _FAILING else ""]


def count(write: _Write, k: Keys, job_id: str, tally: list[str]) -> None:
    """Count a run of ``job_id`` that ended, as ``counted`` gives it. ``scripts.COMMIT``'s
    ``count`` makes the same writes (keep the two alike)."""
    status, minute, last_us, failed = tally
    write("HINCRBY", k.job_stats(job_id), status, 1)
    if minute:
        write("HINCRBY", k.ended_minutes, minute, 1)
    if last_us:
        write("HSET", k.job_stats(job_id), "last", status, "last_us", last_us)
        if failed:
            write("ZADD", k.failing, last_us, job_id)
        else:
            write("ZREM", k.failing, job_id)


def job_changed(write: _Write, k: Keys, old: JobRecord | None, new: JobRecord | None) -> None:
    """Keep the set of tripped jobs."""
    was = old is not None and old.pause_reason is not None
    tripped = new is not None and new.pause_reason is not None
    job = new if new is not None else old
    if job is None or was == tripped:
        return
    if tripped:
        write("ZADD", k.tripped, 0, job.id)
    else:
        write("ZREM", k.tripped, job.id)


def job_deleted(write: _Write, k: Keys, job_id: str) -> None:
    """The job has no last call any more (its counts stay with its runs)."""
    write("HDEL", k.job_stats(job_id), "last", "last_us")
    write("ZREM", k.failing, job_id)


async def run_summary(client: Redis, k: Keys, since_us: Sequence[int], limit: int) -> RunSummary:
    """``RunStats.run_summary``, in one round trip. The per-minute counts are read whole: they
    hold two days of minutes at most."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.execute_command("HGETALL", k.ended_minutes)
        pipe.zcard(k.status(RunStatus.RUNNING))
        pipe.zcard(k.status(RunStatus.SCHEDULED))
        pipe.zcard(k.failing)
        pipe.zrevrange(k.failing, 0, limit - 1)
        pipe.zcard(k.tripped)
        pipe.zrange(k.tripped, 0, limit - 1)
        (
            minutes,
            running,
            queued,
            failing,
            failing_jobs,
            tripped,
            tripped_jobs,
        ) = await pipe.execute()
    firsts = [minute_of(at_us) for at_us in since_us]
    ended = [empty_counts() for _ in firsts]
    for name, value in _pairs(minutes):
        minute, status = name.split(":")
        for first, counts in zip(firsts, ended, strict=True):
            if int(minute) >= first:
                counts[RunStatus(status)] += int(value)
    return RunSummary(
        ended=ended,
        running=running,
        queued=queued,
        failing=failing,
        failing_jobs=list(failing_jobs) if limit > 0 else [],
        tripped=tripped,
        tripped_jobs=list(tripped_jobs) if limit > 0 else [],
    )


async def job_run_counts(client: Redis, k: Keys, job_ids: Sequence[str]) -> dict[str, JobRunCounts]:
    """``RunStats.job_run_counts``, in one round trip."""
    async with client.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.execute_command("HGETALL", k.job_stats(job_id))
        found = await pipe.execute() if job_ids else []
    return {job_id: _counts(dict(_pairs(raw))) for job_id, raw in zip(job_ids, found, strict=True)}


async def _command(client: Redis, *args: Any) -> Any:
    """As ``connection.command`` (which opens the store with ``rebuild``)."""
    return await client.execute_command(*args)  # type: ignore[no-untyped-call]


def _pairs(reply: Any) -> list[tuple[str, str]]:
    """An ``HGETALL`` reply as (field, value) pairs: a flat list in RESP2 (or a dict, as
    redis-py may make it)."""
    if isinstance(reply, dict):
        return [(str(f), str(v)) for f, v in reply.items()]
    return [(str(f), str(v)) for f, v in zip(reply[::2], reply[1::2], strict=True)]


def _counts(fields: dict[str, str]) -> JobRunCounts:
    counts = empty_counts()
    for status in ENDED_STATUSES:
        counts[status] = int(fields.get(status.value, 0))
    last = fields.get("last")
    last_us = fields.get("last_us")
    return JobRunCounts(
        counts, None if last is None else RunStatus(last), None if last_us is None else int(last_us)
    )


async def purge_run_counts(client: Redis, k: Keys, older_than_us: int) -> None:
    """``RunStats.purge_run_counts``: the hash holds two days of minutes, read whole."""
    first = minute_of(older_than_us)
    names = await _command(client, "HKEYS", k.ended_minutes)
    old = [name for name in names if int(name.split(":")[0]) < first]
    if old:
        await _command(client, "HDEL", k.ended_minutes, *old)


async def rebuild(client: Redis, k: Keys) -> None:
    """Build the summaries from the runs and jobs there are (as the layout that has them is
    reached, by one process at a time), a chunk at a time. What an earlier rebuild left, had it
    stopped halfway, is cleared first, so the counts never come out twice. As in the SQL
    stores' migration, a job deleted has no last call, and is therefore not failing."""
    await _command(client, "DEL", k.ended_minutes, k.failing, k.tripped)
    async for runs in _runs(client, k):
        jobs = sorted({run.job_id for run in runs})
        if jobs:
            await _command(client, "DEL", *(k.job_stats(job_id) for job_id in jobs))
    async for runs in _runs(client, k):
        exists = await _existing_jobs(client, k, {run.job_id for run in runs})
        async with client.pipeline(transaction=True) as pipe:
            for run in runs:
                tally = counted(run)
                if tally is not None:
                    if run.job_id not in exists:
                        tally = [*tally[:2], "", ""]  # counted, but no last call
                    count(pipe.execute_command, k, run.job_id, tally)
            await pipe.execute()
    offset = 0
    while True:
        job_ids = await _command(client, "ZRANGE", k.job_ids, offset, offset + _CHUNK - 1)
        offset += len(job_ids)
        raws = await _command(client, "MGET", *(k.job(i) for i in job_ids)) if job_ids else []
        tripped = [
            job_id
            for job_id, raw in zip(job_ids, raws, strict=True)
            if raw is not None and codec.job_from(job_id, raw).pause_reason is not None
        ]
        if tripped:
            await _command(client, "ZADD", k.tripped, *(x for i in tripped for x in (0, i)))
        if len(job_ids) < _CHUNK:
            return


async def _runs(client: Redis, k: Keys) -> AsyncIterator[list[RunRecord]]:
    """Every run, a chunk at a time, oldest first."""
    offset = 0
    while True:
        ids = await _command(client, "ZRANGE", k.run_ids, offset, offset + _CHUNK - 1)
        offset += len(ids)
        raws = await _command(client, "MGET", *(k.run(int(i)) for i in ids)) if ids else []
        runs = [
            codec.run_from(int(run_id), raw)
            for run_id, raw in zip(ids, raws, strict=True)
            if raw is not None
        ]
        yield runs
        if len(ids) < _CHUNK:
            return


async def _existing_jobs(client: Redis, k: Keys, job_ids: set[str]) -> set[str]:
    ordered = sorted(job_ids)
    async with client.pipeline(transaction=False) as pipe:
        for job_id in ordered:
            pipe.execute_command("EXISTS", k.job(job_id))
        found = await pipe.execute()
    return {job_id for job_id, there in zip(ordered, found, strict=True) if there}
