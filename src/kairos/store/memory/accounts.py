"""Users, API keys, secrets and the audit log on a memory store's ``Tables``."""

from __future__ import annotations

import dataclasses
from itertools import islice
from typing import Any

from kairos.errors import ApiKeyNotFound, SecretNotFound, UserExists, UserNotFound
from kairos.identity import Actor, ApiKeyRecord, AuditRecord, Scope, UserRecord, scope_text
from kairos.store.base import SecretRecord
from kairos.store.memory.tables import Tables

__all__ = [
    "add_api_key",
    "add_user",
    "delete_secret",
    "list_audit",
    "purge_audit",
    "put_secret",
    "remove_user",
    "revoke_api_key",
    "update_user",
]


def add_user(
    t: Tables, name: str, password_hash: str, scopes: frozenset[Scope], by: Actor
) -> UserRecord:
    if name in t.users:
        raise UserExists(name)
    user = UserRecord(name, password_hash, scopes, _next_generation(t, name), by.at_us, by.at_us)
    t.put(t.users, name, user)
    t.write_audit(by, "user.add", name, _scopes_detail(user))
    return user


def update_user(
    t: Tables,
    name: str,
    password_hash: str | None,
    scopes: frozenset[Scope] | None,
    by: Actor,
    action: str,
) -> UserRecord:
    user = t.users.get(name)
    if user is None:
        raise UserNotFound(name)  # before a generation is taken: a change of no user takes none
    changes: dict[str, Any] = {"updated_us": by.at_us, "generation": _next_generation(t, name)}
    if password_hash is not None:
        changes["password_hash"] = password_hash
    if scopes is not None:
        changes["scopes"] = scopes
    user = dataclasses.replace(user, **changes)
    t.put(t.users, name, user)
    t.write_audit(by, action, name, _scopes_detail(user))
    return user


def remove_user(t: Tables, name: str, by: Actor) -> None:
    if t.drop(t.users, name) is None:
        raise UserNotFound(name)
    t.write_audit(by, "user.remove", name)


def _next_generation(t: Tables, name: str) -> int:
    """The generation after the last ``name`` was ever given."""
    generation = t.generations.get(name, 0) + 1
    t.put(t.generations, name, generation)
    return generation


def put_secret(t: Tables, name: str, ciphertext: str, by: Actor) -> bool:
    old = t.secrets.get(name)
    created_us = by.at_us if old is None else old.created_us
    t.put(t.secrets, name, SecretRecord(name, ciphertext, created_us, by.at_us))
    t.write_audit(by, "secret.set", name)
    return old is None


def delete_secret(t: Tables, name: str, by: Actor) -> None:
    if t.drop(t.secrets, name) is None:
        raise SecretNotFound(name)
    t.write_audit(by, "secret.delete", name)


def add_api_key(t: Tables, key: ApiKeyRecord, by: Actor) -> None:
    if key.id in t.api_keys:
        raise ValueError(f"an API key with the id {key.id!r} exists already")
    t.put(t.api_keys, key.id, key)
    detail: dict[str, Any] = {"name": key.name, "scopes": scope_text(key.scopes).split()}
    if key.expires_us is not None:
        detail["expires_us"] = key.expires_us
    t.write_audit(by, "key.create", key.id, detail)


def revoke_api_key(t: Tables, key_id: str, by: Actor) -> ApiKeyRecord:
    key = t.api_keys.get(key_id)
    if key is None:
        raise ApiKeyNotFound(key_id)
    if key.revoked_us is None:
        key = dataclasses.replace(key, revoked_us=by.at_us)
        t.put(t.api_keys, key_id, key)
        t.write_audit(by, "key.revoke", key_id)
    return key


def list_audit(
    t: Tables, target: str | None, actor: str | None, before_id: int | None, limit: int
) -> list[AuditRecord]:
    """Audit records newest first, optionally about one target or by one actor."""
    chosen = (t.audit[audit_id] for audit_id in t.audit_ids.descending(before_id))
    wanted = (
        record
        for record in chosen
        if (target is None or record.target == target) and (actor is None or record.actor == actor)
    )
    return list(islice(wanted, max(limit, 0)))


def purge_audit(t: Tables, older_than_us: int, limit: int) -> int:
    """Of the ``limit`` oldest records, delete those made before ``older_than_us``."""
    oldest = list(islice(t.audit_ids.ascending(), max(limit, 0)))
    doomed = [audit_id for audit_id in oldest if t.audit[audit_id].at_us < older_than_us]
    for audit_id in doomed:
        t.remove_audit(audit_id)
    return len(doomed)


def _scopes_detail(user: UserRecord) -> dict[str, Any]:
    return {"scopes": scope_text(user.scopes).split()}
