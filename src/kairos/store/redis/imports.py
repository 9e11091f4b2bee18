"""Records imported as another store kept them (``RecordImport``) as ``Tx`` transactions."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from kairos.errors import Conflict
from kairos.identity import ApiKeyRecord, AuditRecord, UserRecord
from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.base import SecretRecord
from kairos.store.redis import codec
from kairos.store.redis.tx import Tx

__all__ = [
    "import_api_keys",
    "import_audit",
    "import_jobs",
    "import_runs",
    "import_secrets",
    "import_users",
]


async def import_jobs(tx: Tx, jobs: Sequence[JobRecord]) -> None:
    found = await tx.jobs([job.id for job in jobs])
    taken = [job.id for job, old in zip(jobs, found, strict=True) if old is not None]
    _refuse("jobs", taken)
    for job in jobs:
        await tx.put_job(job)


async def import_runs(tx: Tx, runs: Sequence[RunRecord]) -> None:
    fires = [(run.job_id, run.scheduled_for_us, run.attempt) for run in runs]
    taken = [fire for fire, held in zip(fires, await tx.fires_taken(fires), strict=True) if held]
    _refuse("runs (job, scheduled time, attempt)", taken)
    ids = await tx.new_ids(tx.k.run_seq, len(runs))
    for run, run_id in zip(runs, ids, strict=True):
        due_us = run.due_us
        if run.status is RunStatus.SCHEDULED and due_us is None:
            due_us = run.scheduled_for_us
        tx.add_run(dataclasses.replace(run, id=run_id, due_us=due_us))


async def import_users(tx: Tx, users: Sequence[UserRecord]) -> None:
    if not users:
        return
    names = [user.name for user in users]
    found = await tx.read("HMGET", tx.k.users, *names)
    _refuse("users", [name for name, raw in zip(names, found, strict=True) if raw is not None])
    last = await tx.read("HMGET", tx.k.generations, *names)
    for user, generation in zip(users, last, strict=True):
        tx.write("HSET", tx.k.users, user.name, codec.user_to(user))
        tx.write("HSET", tx.k.generations, user.name, max(int(generation or 0), user.generation))


async def import_api_keys(tx: Tx, keys: Sequence[ApiKeyRecord]) -> None:
    if not keys:
        return
    ids = [key.id for key in keys]
    found = await tx.read("HMGET", tx.k.api_keys, *ids)
    _refuse("API keys", [key_id for key_id, raw in zip(ids, found, strict=True) if raw])
    for key in keys:
        tx.write("HSET", tx.k.api_keys, key.id, codec.api_key_to(key))
        tx.write("ZADD", tx.k.api_key_order, key.created_us, key.id)


async def import_secrets(tx: Tx, secrets: Sequence[SecretRecord]) -> None:
    if not secrets:
        return
    names = [secret.name for secret in secrets]
    found = await tx.read("HMGET", tx.k.secrets, *names)
    _refuse("secrets", [name for name, raw in zip(names, found, strict=True) if raw is not None])
    for secret in secrets:
        tx.write("HSET", tx.k.secrets, secret.name, codec.secret_to(secret))


async def import_audit(tx: Tx, records: Sequence[AuditRecord]) -> None:
    # Watching a key puts the transaction's connection in immediate mode, which taking ids
    # needs (never the counter itself: taking an id would then undo the transaction).
    await tx.watch(tx.k.audit_ids)
    ids = await tx.new_ids(tx.k.audit_seq, len(records))
    for record, audit_id in zip(records, ids, strict=True):
        tx.add_audit(dataclasses.replace(record, id=audit_id))


def _refuse(what: str, taken: Sequence[object]) -> None:
    if taken:
        shown = ", ".join(repr(key) for key in taken[:5])
        raise Conflict(f"{what} exist already, nothing was overwritten: {shown}")
