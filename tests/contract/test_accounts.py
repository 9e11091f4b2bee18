"""What every store guarantees for users, API keys and the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from kairos.errors import ApiKeyNotFound, JobExists, JobNotFound, UserExists, UserNotFound
from kairos.identity import Actor, ApiKeyRecord, Scope, UserRecord
from kairos.models import JobRecord
from kairos.store import Store
from tests.contract.test_store import NOW, SPEC, S, record

BY = Actor("user:ann", NOW)
READ = frozenset([Scope.JOBS_READ])


def add(store: Store, name: str, by: Actor = BY) -> Awaitable[UserRecord]:
    return store.add_user(name, "$argon2id$stand-in", READ, by=by)


def key(key_id: str = "0123456789abcdef", expires_us: int | None = None) -> ApiKeyRecord:
    return ApiKeyRecord(key_id, "ci", "ab" * 32, READ, NOW, "admin-token", expires_us)


async def test_users_are_added_read_changed_listed_and_removed(store: Store) -> None:
    added = await add(store, "bo")
    assert added == UserRecord("bo", "$argon2id$stand-in", READ, 1, NOW, NOW)
    await add(store, "al")
    with pytest.raises(UserExists):
        await add(store, "bo")
    assert await store.get_user("bo") == added
    assert await store.get_user("nobody") is None
    later = Actor("user:ann", NOW + S)
    changed = await store.update_user("bo", password_hash="$argon2id$new", by=later, action="p")
    assert changed == UserRecord("bo", "$argon2id$new", READ, 2, NOW, NOW + S)
    assert await store.get_user("bo") == changed
    rescoped = await store.update_user("bo", scopes=frozenset(Scope), by=BY, action="user.scopes")
    assert (rescoped.password_hash, rescoped.scopes, rescoped.generation) == (
        "$argon2id$new",
        frozenset(Scope),
        3,
    )
    assert [u.name for u in await store.list_users()] == ["al", "bo"]
    await store.remove_user("bo", by=BY)
    with pytest.raises(UserNotFound):
        await store.remove_user("bo", by=BY)
    with pytest.raises(UserNotFound):
        await store.update_user("bo", password_hash="$argon2id$x", by=BY, action="user.passwd")
    actions = [(r.action, r.target) for r in await store.list_audit()]
    assert actions == [
        ("user.remove", "bo"),
        ("user.scopes", "bo"),
        ("p", "bo"),
        ("user.add", "al"),
        ("user.add", "bo"),
    ]


async def test_a_names_generations_never_repeat_even_after_its_user_is_removed(
    store: Store,
) -> None:
    assert (await add(store, "bo")).generation == 1
    await store.update_user("bo", scopes=frozenset(Scope), by=BY, action="user.scopes")
    await store.remove_user("bo", by=BY)
    with pytest.raises(UserNotFound):  # a change of no user takes no generation
        await store.update_user("bo", scopes=READ, by=BY, action="user.scopes")
    assert (await add(store, "bo")).generation == 3
    with pytest.raises(UserExists):  # nor does adding a name that is taken
        await add(store, "bo")
    changed = await store.update_user("bo", scopes=READ, by=BY, action="user.scopes")
    assert changed.generation == 4
    assert (await add(store, "cy")).generation == 1


async def test_changes_of_one_user_made_at_once_each_get_a_generation_and_keep_each_other(
    store: Store,
) -> None:
    await add(store, "bo")
    changes = [
        store.update_user("bo", password_hash=f"$argon2id${i}", by=BY, action="user.passwd")
        if i % 2
        else store.update_user("bo", scopes=frozenset(Scope), by=BY, action="user.scopes")
        for i in range(10)
    ]
    generations = sorted(user.generation for user in await asyncio.gather(*changes))
    assert generations == list(range(2, 12))
    now = await store.get_user("bo")
    assert now is not None
    assert (now.generation, now.scopes) == (11, frozenset(Scope))
    assert now.password_hash != "$argon2id$stand-in"


async def test_a_revoked_key_stays_listed_and_revoking_again_changes_nothing(
    store: Store,
) -> None:
    await store.add_api_key(key(expires_us=NOW + S), by=BY)
    assert await store.get_api_key("0123456789abcdef") == key(expires_us=NOW + S)
    revoked = await store.revoke_api_key("0123456789abcdef", by=Actor("admin-token", NOW + 5))
    assert revoked.revoked_us == NOW + 5
    again = await store.revoke_api_key("0123456789abcdef", by=Actor("admin-token", NOW + 9))
    assert again.revoked_us == NOW + 5
    assert [k.revoked_us for k in await store.list_api_keys()] == [NOW + 5]
    with pytest.raises(ApiKeyNotFound):
        await store.revoke_api_key("fedcba9876543210", by=BY)
    assert [r.action for r in await store.list_audit()] == ["key.revoke", "key.create"]


async def test_each_job_change_writes_its_audit_record_in_its_own_transaction(
    store: Store,
) -> None:
    await store.insert_job(record("a"), by=BY)
    with pytest.raises(JobExists):
        await store.insert_job(record("a"), by=BY)
    # Records made now, as a replace makes them: the stored creation time of "a" stays older.
    batch = [JobRecord(job_id, SPEC, NOW, NOW, NOW, NOW) for job_id in ("a", "b")]
    await store.upsert_jobs(batch, by=Actor("key:k", NOW + 1))
    await store.update_job(record("a"), expected_updated_us=NOW, by=BY, action="job.pause")
    run = await store.add_manual_run("a", NOW, by=BY)
    with pytest.raises(JobNotFound):
        await store.add_manual_run("zzz", NOW, by=BY)
    await store.delete_job("a", by=BY)
    with pytest.raises(JobNotFound):
        await store.delete_job("a", by=BY)
    records = await store.list_audit()
    assert [(r.actor, r.action, r.target) for r in reversed(records)] == [
        ("user:ann", "job.create", "a"),
        ("key:k", "job.replace", "a"),
        ("key:k", "job.create", "b"),
        ("user:ann", "job.pause", "a"),
        ("user:ann", "job.run", "a"),
        ("user:ann", "job.delete", "a"),
    ]
    assert records[1].detail == f'{{"run_id":{run.id}}}'
    assert [r.target for r in await store.list_audit(target="b")] == ["b"]
    assert len(await store.list_audit(actor="key:k")) == 2
    newest = await store.list_audit(limit=2)
    assert [r.id for r in await store.list_audit(before_id=newest[-1].id)] == [
        r.id for r in records[2:]
    ]


async def test_old_audit_records_are_purged_oldest_first_in_chunks(store: Store) -> None:
    for index in range(5):
        await add(store, f"u{index}", Actor("t", NOW + index))
    assert await store.purge_audit(NOW + 4, limit=3) == 3
    assert [r.target for r in await store.list_audit()] == ["u4", "u3"]
    assert await store.purge_audit(NOW + 4, limit=3) == 1
    assert await store.purge_audit(NOW + 4, limit=3) == 0
