"""The jobs' changes as ``Tx`` transactions, and their listings from the indexes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence

from redis.asyncio import Redis

from kairos.errors import Conflict, JobExists, JobNotFound
from kairos.identity import Actor
from kairos.models import JobRecord, RunStatus
from kairos.store.base import JobQuery
from kairos.store.redis import codec, stats
from kairos.store.redis.connection import command, scored
from kairos.store.redis.keys import Keys
from kairos.store.redis.tx import Tx

__all__ = [
    "all_jobs",
    "apply_jobs",
    "check",
    "check_int64",
    "delete_job",
    "insert_job",
    "list_jobs",
    "update_job",
    "upsert_jobs",
]

_DELETED = "the job was deleted before this run started"
_AUDIT_DEFINITIONS_UP_TO = 100
_PAGE = 200
_INT64 = range(-(2**63), 2**63)


async def insert_job(tx: Tx, job: JobRecord, by: Actor | None) -> None:
    if await tx.job(job.id) is not None:
        raise JobExists(job.id)
    check(job)
    await tx.put_job(job)
    if by is not None:
        await tx.audit(by, "job.create", job.id, _definition(job))
    tx.notify(job.next_run_us, job.id)


async def upsert_jobs(tx: Tx, batch: Sequence[JobRecord], by: Actor | None) -> dict[str, int]:
    for job in batch:
        check(job)
    olds = await tx.jobs([job.id for job in batch])
    stored: dict[str, int] = {}
    for job, old in zip(batch, olds, strict=True):
        if old is not None and old.created_us != job.created_us:
            job = dataclasses.replace(job, created_us=old.created_us)
        await tx.put_job(job)
        stored[job.id] = job.created_us
        tx.notify(job.next_run_us, job.id)
    if by is not None:
        detailed = len(batch) <= _AUDIT_DEFINITIONS_UP_TO
        for job in batch:
            action = "job.create" if stored[job.id] == job.created_us else "job.replace"
            await tx.audit(by, action, job.id, _definition(job) if detailed else None)
    return stored


async def apply_jobs(
    tx: Tx,
    upserts: Sequence[JobRecord],
    deletes: Sequence[str],
    by: Actor,
    summary: dict[str, object],
) -> None:
    await upsert_jobs(tx, upserts, None)
    for job_id in deletes:
        if await tx.job(job_id) is not None:
            await delete_job(tx, job_id, False, None)
    await tx.audit(by, "jobs.apply", "jobs", summary)


async def update_job(
    tx: Tx, job: JobRecord, expected_updated_us: int, by: Actor | None, action: str
) -> None:
    old = await tx.job(job.id)
    if old is None:
        raise JobNotFound(job.id)
    if old.updated_us != expected_updated_us:
        raise Conflict(f"Job {job.id!r} was changed meanwhile; read it again and retry")
    check(job)
    await tx.put_job(dataclasses.replace(job, created_us=old.created_us))
    if by is not None:
        await tx.audit(by, action, job.id, _definition(job) if action == "job.update" else None)
    tx.notify(job.next_run_us, job.id)


async def delete_job(tx: Tx, job_id: str, purge_runs: bool, by: Actor | None) -> None:
    """Pending runs become ``skipped``; runs in flight are left to finish."""
    if await tx.remove_job(job_id) is None:
        raise JobNotFound(job_id)
    if by is not None:
        await tx.audit(by, "job.delete", job_id, {"purge_runs": True} if purge_runs else None)
    run_ids = [int(i) for i in await tx.read("ZRANGE", tx.k.job_runs(job_id), 0, -1)]
    for run in await tx.runs(run_ids):
        if run is None:
            continue
        if run.status is RunStatus.SCHEDULED:
            skipped = RunStatus.SKIPPED
            tx.replace_run(
                run, dataclasses.replace(run, status=skipped, error=_DELETED, due_us=None)
            )
        elif purge_runs and run.finished_us is not None:
            tx.remove_run(run)
    stats.job_deleted(tx.write, tx.k, job_id)
    tx.notify(None, job_id)


async def list_jobs(client: Redis, k: Keys, query: JobQuery, limit: int) -> list[JobRecord]:
    page: list[JobRecord] = []
    if limit <= 0:
        return page
    async for job in _ordered(client, k, query):
        if _matches(job, query):
            page.append(job)
            if len(page) >= limit:
                break
    return page


async def _ordered(client: Redis, k: Keys, query: JobQuery) -> AsyncIterator[JobRecord]:
    after_us, after_id = query.after or (None, None)
    if not query.by_next_run:
        async for job in _by_id(client, k, query, after_id):
            yield job
        return
    if query.after is None or after_us is not None:
        async for job in _by_due(client, k, after_us, after_id):
            yield job
        after_id = None
    async for job in _by_id(client, k, query, after_id):
        if job.next_run_us is None:
            yield job


async def _by_due(
    client: Redis, k: Keys, after_us: int | None, after_id: str | None
) -> AsyncIterator[JobRecord]:
    """Jobs with a next run, soonest first (then by id), after ``(after_us, after_id)``."""
    low = "-inf" if after_us is None else after_us
    offset = 0
    while True:
        flat: list[str] = await command(
            client, "ZRANGEBYSCORE", k.due, low, "+inf", "WITHSCORES", "LIMIT", offset, _PAGE
        )
        chunk = scored(flat)
        offset += len(chunk)
        keep = [
            job_id
            for job_id, score in chunk
            if after_us is None
            or after_id is None
            or (int(float(score)), job_id) > (after_us, after_id)
        ]
        for job in await _load(client, k, keep):
            yield job
        if len(chunk) < _PAGE:
            return


async def _by_id(
    client: Redis, k: Keys, query: JobQuery, after_id: str | None
) -> AsyncIterator[JobRecord]:
    """Jobs by id (of the query's tag, if any) after ``after_id``, within its prefix's range."""
    index = k.job_ids if query.tag is None else k.tag(query.tag)
    low = "-" if after_id is None else f"({after_id}"
    if query.prefix and (after_id is None or after_id < query.prefix):
        low = f"[{query.prefix}"
    while True:
        chunk: list[str] = await command(client, "ZRANGEBYLEX", index, low, "+", "LIMIT", 0, _PAGE)
        if query.prefix:
            inside = [job_id for job_id in chunk if job_id.startswith(query.prefix)]
            ended = len(inside) < len(chunk) and any(j > query.prefix for j in chunk)
        else:
            inside, ended = chunk, False
        for job in await _load(client, k, inside):
            yield job
        if ended or len(chunk) < _PAGE:
            return
        low = f"({chunk[-1]}"


async def _load(client: Redis, k: Keys, job_ids: Sequence[str]) -> list[JobRecord]:
    """The jobs ``job_ids`` that still exist (one may go between the index and its read)."""
    if not job_ids:
        return []
    raws = await command(client, "MGET", *(k.job(job_id) for job_id in job_ids))
    return [
        codec.job_from(job_id, raw)
        for job_id, raw in zip(job_ids, raws, strict=True)
        if raw is not None
    ]


async def all_jobs(client: Redis, k: Keys) -> AsyncIterator[JobRecord]:
    """Every job, by id, a page at a time."""
    async for job in _by_id(client, k, JobQuery(), None):
        yield job


def _matches(job: JobRecord, query: JobQuery) -> bool:
    if query.prefix and not job.id.startswith(query.prefix):
        return False
    if query.state is not None and job.state is not query.state:
        return False
    return query.tag is None or query.tag in job.spec.tags


def check(job: JobRecord) -> None:
    check_int64(job.next_fire_us, job.next_run_us, job.created_us, job.updated_us)


def check_int64(*values: int | None) -> None:
    """Refuse a time a 64-bit integer could not hold, as the SQL stores' drivers do."""
    for value in values:
        if value is not None and value not in _INT64:
            raise OverflowError(f"{value} does not fit in a 64-bit integer")


def _definition(job: JobRecord) -> str:
    return job.spec.masked().model_dump_json()
