"""Records to Redis values (JSON) and back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from kairos.identity import ApiKeyRecord, AuditRecord, UserRecord, parse_scopes, scope_text
from kairos.models import JobRecord, JobSpec, RunRecord, RunStatus
from kairos.store.base import SecretRecord

__all__ = [
    "api_key_from",
    "api_key_to",
    "audit_from",
    "audit_to",
    "dumps",
    "job_from",
    "job_moved",
    "job_to",
    "loads",
    "run_from",
    "run_to",
    "secret_from",
    "secret_to",
    "user_from",
    "user_to",
]


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(raw: str | bytes) -> Any:
    return orjson.loads(raw)


def job_to(job: JobRecord) -> str:
    return dumps(
        [
            job.spec.model_dump_json(),
            job.next_fire_us,
            job.next_run_us,
            job.created_us,
            job.updated_us,
            job.failures,
            job.pause_reason,
        ]
    )


def job_from(
    job_id: str, raw: str | bytes, spec_of: Callable[[str], JobSpec] = JobSpec.from_stored
) -> JobRecord:
    """``spec_of``: how the spec's text becomes a ``JobSpec`` (see ``SpecCache``)."""
    spec, *bookkeeping = loads(raw)
    return JobRecord(job_id, spec_of(spec), *bookkeeping)


def job_moved(raw: str, next_fire_us: int | None, next_run_us: int | None) -> tuple[int, str]:
    """The job's record ``raw`` with its next fire and due time changed, the rest as it is: how
    many bytes of ``raw`` it starts with (its spec, unchanged), and what follows them."""
    fields = loads(raw)
    head = b"[" + orjson.dumps(fields[0]) + b","
    fields[1:3] = next_fire_us, next_run_us
    if raw.startswith(head.decode()):
        return len(head), dumps(fields[1:])[1:]
    return 0, dumps(fields)


def run_to(run: RunRecord) -> str:
    return dumps(
        [
            run.job_id,
            run.scheduled_for_us,
            run.attempt,
            run.status.value,
            run.manual,
            run.node_id,
            run.started_us,
            run.finished_us,
            run.http_status,
            run.error,
            run.response_excerpt,
            run.due_us,
        ]
    )


def run_from(run_id: int, raw: str | bytes) -> RunRecord:
    job_id, scheduled, attempt, status, *rest = loads(raw)
    return RunRecord(run_id, job_id, scheduled, attempt, RunStatus(status), *rest)


def user_to(user: UserRecord) -> str:
    return dumps(
        [
            user.password_hash,
            scope_text(user.scopes),
            user.generation,
            user.created_us,
            user.updated_us,
        ]
    )


def user_from(name: str, raw: str | bytes) -> UserRecord:
    password_hash, scopes, generation, created_us, updated_us = loads(raw)
    return UserRecord(name, password_hash, parse_scopes(scopes), generation, created_us, updated_us)


def api_key_to(key: ApiKeyRecord) -> str:
    return dumps(
        [
            key.name,
            key.secret_hash,
            scope_text(key.scopes),
            key.created_us,
            key.created_by,
            key.expires_us,
            key.revoked_us,
        ]
    )


def api_key_from(key_id: str, raw: str | bytes) -> ApiKeyRecord:
    name, secret_hash, scopes, *rest = loads(raw)
    return ApiKeyRecord(key_id, name, secret_hash, parse_scopes(scopes), *rest)


def secret_to(secret: SecretRecord) -> str:
    return dumps([secret.ciphertext, secret.created_us, secret.updated_us])


def secret_from(name: str, raw: str | bytes) -> SecretRecord:
    return SecretRecord(name, *loads(raw))


def audit_to(record: AuditRecord) -> str:
    return dumps([record.at_us, record.actor, record.action, record.target, record.detail])


def audit_from(audit_id: int, raw: str | bytes) -> AuditRecord:
    return AuditRecord(audit_id, *loads(raw))
