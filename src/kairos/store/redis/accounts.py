"""Users, API keys, secrets and the audit log as ``Tx`` transactions."""

from __future__ import annotations

import dataclasses
from typing import Any

from redis.asyncio import Redis

from kairos.errors import ApiKeyNotFound, SecretNotFound, UserExists, UserNotFound
from kairos.identity import Actor, ApiKeyRecord, AuditRecord, Scope, UserRecord, scope_text
from kairos.store.base import SecretRecord
from kairos.store.redis import codec
from kairos.store.redis.connection import command
from kairos.store.redis.keys import Keys
from kairos.store.redis.tx import Tx

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

_PAGE = 200


async def _user(tx: Tx, name: str) -> UserRecord | None:
    raw = await tx.read("HGET", tx.k.users, name)
    return None if raw is None else codec.user_from(name, raw)


async def add_user(
    tx: Tx, name: str, password_hash: str, scopes: frozenset[Scope], by: Actor
) -> UserRecord:
    if await _user(tx, name) is not None:
        raise UserExists(name)
    generation = await _next_generation(tx, name)
    user = UserRecord(name, password_hash, scopes, generation, by.at_us, by.at_us)
    tx.write("HSET", tx.k.users, name, codec.user_to(user))
    await tx.audit(by, "user.add", name, _scopes_detail(user))
    return user


async def update_user(
    tx: Tx,
    name: str,
    password_hash: str | None,
    scopes: frozenset[Scope] | None,
    by: Actor,
    action: str,
) -> UserRecord:
    user = await _user(tx, name)
    if user is None:
        raise UserNotFound(name)
    changes: dict[str, Any] = {
        "updated_us": by.at_us,
        "generation": await _next_generation(tx, name),
    }
    if password_hash is not None:
        changes["password_hash"] = password_hash
    if scopes is not None:
        changes["scopes"] = scopes
    user = dataclasses.replace(user, **changes)
    tx.write("HSET", tx.k.users, name, codec.user_to(user))
    await tx.audit(by, action, name, _scopes_detail(user))
    return user


async def remove_user(tx: Tx, name: str, by: Actor) -> None:
    if await _user(tx, name) is None:
        raise UserNotFound(name)
    tx.write("HDEL", tx.k.users, name)
    await tx.audit(by, "user.remove", name)


async def _next_generation(tx: Tx, name: str) -> int:
    """The generation after the last ``name`` was ever given (kept when its user goes)."""
    generation = int(await tx.read("HGET", tx.k.generations, name) or 0) + 1
    tx.write("HSET", tx.k.generations, name, generation)
    return generation


async def put_secret(tx: Tx, name: str, ciphertext: str, by: Actor) -> bool:
    raw = await tx.read("HGET", tx.k.secrets, name)
    old = None if raw is None else codec.secret_from(name, raw)
    created_us = by.at_us if old is None else old.created_us
    secret = SecretRecord(name, ciphertext, created_us, by.at_us)
    tx.write("HSET", tx.k.secrets, name, codec.secret_to(secret))
    await tx.audit(by, "secret.set", name)
    return old is None


async def delete_secret(tx: Tx, name: str, by: Actor) -> None:
    if not await tx.read("HEXISTS", tx.k.secrets, name):
        raise SecretNotFound(name)
    tx.write("HDEL", tx.k.secrets, name)
    await tx.audit(by, "secret.delete", name)


async def add_api_key(tx: Tx, key: ApiKeyRecord, by: Actor) -> None:
    if await tx.read("HEXISTS", tx.k.api_keys, key.id):
        raise ValueError(f"an API key with the id {key.id!r} exists already")
    tx.write("HSET", tx.k.api_keys, key.id, codec.api_key_to(key))
    tx.write("ZADD", tx.k.api_key_order, key.created_us, key.id)
    detail: dict[str, Any] = {"name": key.name, "scopes": scope_text(key.scopes).split()}
    if key.expires_us is not None:
        detail["expires_us"] = key.expires_us
    await tx.audit(by, "key.create", key.id, detail)


async def revoke_api_key(tx: Tx, key_id: str, by: Actor) -> ApiKeyRecord:
    raw = await tx.read("HGET", tx.k.api_keys, key_id)
    if raw is None:
        raise ApiKeyNotFound(key_id)
    key = codec.api_key_from(key_id, raw)
    if key.revoked_us is None:
        key = dataclasses.replace(key, revoked_us=by.at_us)
        tx.write("HSET", tx.k.api_keys, key_id, codec.api_key_to(key))
        await tx.audit(by, "key.revoke", key_id)
    return key


async def list_audit(
    client: Redis,
    k: Keys,
    target: str | None,
    actor: str | None,
    before_id: int | None,
    limit: int,
) -> list[AuditRecord]:
    """Newest first, from the narrowest index the filters allow."""
    if limit <= 0:
        return []
    index = k.audit_ids
    if target is not None:
        index = k.audit_target(target[:200])
    elif actor is not None:
        index = k.audit_actor(actor[:200])
    high: str | int = "+inf" if before_id is None else f"({before_id}"
    found: list[AuditRecord] = []
    while len(found) < limit:
        ids: list[str] = await command(
            client, "ZREVRANGEBYSCORE", index, high, "-inf", "LIMIT", 0, _PAGE
        )
        if not ids:
            break
        raws = await command(client, "HMGET", k.audit, *ids)
        for audit_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                continue
            record = codec.audit_from(int(audit_id), raw)
            if (target is None or record.target == target) and (
                actor is None or record.actor == actor
            ):
                found.append(record)
        if len(ids) < _PAGE:
            break
        high = f"({ids[-1]}"
    return found[:limit]


async def purge_audit(tx: Tx, older_than_us: int, limit: int) -> int:
    """Of the ``limit`` oldest records, delete those made before ``older_than_us``."""
    if limit <= 0:
        return 0
    ids = await tx.read("ZRANGE", tx.k.audit_ids, 0, limit - 1)
    raws = await tx.read("HMGET", tx.k.audit, *ids) if ids else []
    doomed = 0
    for audit_id, raw in zip(ids, raws, strict=True):
        if raw is None:
            continue
        record = codec.audit_from(int(audit_id), raw)
        if record.at_us >= older_than_us:
            continue
        tx.write("HDEL", tx.k.audit, audit_id)
        tx.write("ZREM", tx.k.audit_ids, audit_id)
        tx.write("ZREM", tx.k.audit_target(record.target), audit_id)
        tx.write("ZREM", tx.k.audit_actor(record.actor), audit_id)
        doomed += 1
    return doomed


def _scopes_detail(user: UserRecord) -> dict[str, Any]:
    return {"scopes": scope_text(user.scopes).split()}
