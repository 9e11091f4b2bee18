"""Records imported as another store kept them (``RecordImport``), on a memory store's
``Tables``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from kairos.errors import Conflict
from kairos.identity import ApiKeyRecord, AuditRecord, UserRecord
from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store.base import SecretRecord
from kairos.store.memory.tables import Tables, check_int64

__all__ = [
    "import_api_keys",
    "import_audit",
    "import_jobs",
    "import_runs",
    "import_secrets",
    "import_users",
]


def import_jobs(t: Tables, jobs: Sequence[JobRecord]) -> None:
    for job in jobs:
        if job.id in t.jobs:
            raise Conflict(f"job {job.id!r} exists already")
        check_int64(job.next_fire_us, job.next_run_us, job.created_us, job.updated_us)
        t.put_job(job)


def import_runs(t: Tables, runs: Sequence[RunRecord]) -> None:
    for run in runs:
        if (run.job_id, run.scheduled_for_us, run.attempt) in t.fires:
            raise Conflict(
                f"run {run.attempt} of job {run.job_id!r} at {run.scheduled_for_us} exists already"
            )
        check_int64(run.scheduled_for_us, run.started_us, run.finished_us, run.due_us)
        due_us = run.due_us
        if run.status is RunStatus.SCHEDULED and due_us is None:
            due_us = run.scheduled_for_us
        t.put_run(dataclasses.replace(run, id=t.new_run_id(), due_us=due_us))


def import_users(t: Tables, users: Sequence[UserRecord]) -> None:
    for user in users:
        if user.name in t.users:
            raise Conflict(f"user {user.name!r} exists already")
        t.put(t.users, user.name, user)
        last = max(t.generations.get(user.name, 0), user.generation)
        t.put(t.generations, user.name, last)


def import_api_keys(t: Tables, keys: Sequence[ApiKeyRecord]) -> None:
    for key in keys:
        if key.id in t.api_keys:
            raise Conflict(f"API key {key.id!r} exists already")
        t.put(t.api_keys, key.id, key)


def import_secrets(t: Tables, secrets: Sequence[SecretRecord]) -> None:
    for secret in secrets:
        if secret.name in t.secrets:
            raise Conflict(f"secret {secret.name!r} exists already")
        t.put(t.secrets, secret.name, secret)


def import_audit(t: Tables, records: Sequence[AuditRecord]) -> None:
    for record in records:
        t.add_audit_record(record)
