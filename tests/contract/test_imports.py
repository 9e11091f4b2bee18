"""What every store guarantees of ``RecordImport``: records written as they are, in one
transaction per batch, never over a record already there; runs and audit records under new
ids in the order given."""

from __future__ import annotations

import dataclasses

import pytest

from kairos.errors import Conflict
from kairos.identity import Actor, ApiKeyRecord, AuditRecord, Scope, UserRecord
from kairos.models import JobRecord, RunRecord, RunStatus
from kairos.store import JobQuery, SecretRecord, Store
from tests.contract.test_store import NOW, S, record

BY = Actor("user:ann", NOW)
SCOPES = frozenset({Scope.JOBS_READ})


def tripped(job_id: str) -> JobRecord:
    job = record(job_id, None, paused=False, tags=["night"])
    return dataclasses.replace(
        job, failures=3, pause_reason="3 failures in a row", next_fire_us=NOW
    )


def run(job_id: str, at_us: int, status: RunStatus, **fields: object) -> RunRecord:
    return RunRecord(0, job_id, at_us, 1, status, **fields)  # type: ignore[arg-type]


async def all_jobs(store: Store) -> list[JobRecord]:
    return await store.list_jobs(JobQuery(), 100)


async def test_jobs_arrive_as_they_were_and_are_found_by_state_tag_and_due_time(
    store: Store,
) -> None:
    jobs = [record("a", NOW + 5 * S), tripped("b"), record("c", None, paused=True)]
    jobs[0] = dataclasses.replace(jobs[0], created_us=NOW - 9 * S, failures=1)
    await store.import_jobs(jobs)
    assert await all_jobs(store) == jobs
    assert [j.id for j in await store.list_jobs(JobQuery(tag="night"), 10)] == ["b"]
    counts = await store.count_jobs()
    assert {state.value: n for state, n in counts.items() if n} == {
        "scheduled": 1,
        "tripped": 1,
        "paused": 1,
    }
    assert await store.list_audit() == []


async def test_a_job_already_there_refuses_the_whole_batch(store: Store) -> None:
    await store.insert_job(record("b"))
    with pytest.raises(Conflict):
        await store.import_jobs([record("a"), record("b", NOW + S)])
    assert [(j.id, j.next_run_us) for j in await all_jobs(store)] == [("b", NOW)]


async def test_imported_runs_get_new_ids_in_the_order_given_and_keep_the_rest(
    store: Store,
) -> None:
    await store.import_jobs([record("a", NOW + 60 * S)])
    done = run("a", NOW - 2 * S, RunStatus.FAILED, started_us=NOW - 2 * S, error="boom")
    done = dataclasses.replace(done, finished_us=NOW - S, http_status=500)
    queued = dataclasses.replace(run("a", NOW, RunStatus.SCHEDULED), attempt=2, due_us=NOW)
    await store.import_runs([done, queued])
    newest, oldest = await store.list_runs(job_id="a", status=None, before_id=None, limit=10)
    assert newest.id > oldest.id
    assert dataclasses.replace(oldest, id=0) == done
    assert dataclasses.replace(newest, id=0) == queued
    with pytest.raises(Conflict):
        await store.import_runs([run("a", NOW + 9 * S, RunStatus.SKIPPED), done])
    assert len(await store.list_runs(job_id="a", status=None, before_id=None, limit=10)) == 2


async def test_users_keep_their_generation_and_the_next_one_is_above_it(store: Store) -> None:
    ann = UserRecord("ann", "$argon2id$hash", SCOPES, 7, NOW - S, NOW)
    await store.import_users([ann])
    assert await store.get_user("ann") == ann
    changed = await store.update_user("ann", scopes=frozenset({Scope.ADMIN}), by=BY, action="x")
    assert changed.generation == 8
    with pytest.raises(Conflict):
        await store.import_users([dataclasses.replace(ann, name="bo"), ann])
    assert [u.name for u in await store.list_users()] == ["ann"]


async def test_keys_and_secrets_arrive_as_they_were(store: Store) -> None:
    revoked = ApiKeyRecord("k1", "ci", "0" * 64, SCOPES, NOW - S, "user:ann", None, NOW)
    live = ApiKeyRecord("k2", "cd", "1" * 64, SCOPES, NOW, "admin-token", NOW + S, None)
    await store.import_api_keys([revoked, live])
    assert await store.list_api_keys() == [revoked, live]
    secret = SecretRecord("crawler", "sealed", NOW - S, NOW)
    await store.import_secrets([secret])
    assert await store.list_secrets() == [secret]
    with pytest.raises(Conflict):
        await store.import_api_keys([live])
    with pytest.raises(Conflict):
        await store.import_secrets([secret])
    assert await store.list_audit() == []


async def test_audit_records_get_new_ids_in_the_order_given(store: Store) -> None:
    await store.put_secret("there", "sealed", by=BY)
    older = AuditRecord(90, NOW - S, "user:ann", "job.create", "a", '{"x":1}')
    newer = AuditRecord(91, NOW, "key:k1", "job.pause", "a", None)
    await store.import_audit([older, newer])
    listed = await store.list_audit()
    assert [dataclasses.replace(r, id=0) for r in listed[:2]] == [
        dataclasses.replace(newer, id=0),
        dataclasses.replace(older, id=0),
    ]
    assert listed[0].id > listed[1].id > listed[2].id
    assert [r.action for r in await store.list_audit(target="a")] == ["job.pause", "job.create"]
