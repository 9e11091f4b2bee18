"""The users, API keys, secrets and audit log part of ``SqlStore``, and the audit record
writer every change of the store calls in its own transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Select, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from kairos.errors import ApiKeyNotFound, SecretNotFound, UserExists, UserNotFound
from kairos.identity import (
    Actor,
    ApiKeyRecord,
    AuditRecord,
    Scope,
    UserRecord,
    parse_scopes,
    scope_text,
)
from kairos.store.base import SecretRecord
from kairos.store.driver import DriverStatement
from kairos.store.schema import api_keys, audit, secrets, user_generations, users
from kairos.store.sql.dialect import SqlDialect

__all__ = ["SqlAccounts", "audit_row", "key_values", "user_values", "write_audit"]

T = TypeVar("T")

_INSERT_AUDIT = DriverStatement(insert(audit))  # every job change writes one
# Built once too: every request made with a user's token or an API key reads one.
_USER_BY_NAME = select(users).where(users.c.name == bindparam("b_name"))
_KEY_BY_ID = select(api_keys).where(api_keys.c.id == bindparam("b_id"))
_SECRET_BY_NAME = select(secrets).where(secrets.c.name == bindparam("b_name"))


def audit_row(by: Actor, action: str, target: str, detail: Any = None) -> dict[str, Any]:
    """One audit record's values; ``detail`` is stored as JSON (a string is stored as it is)."""
    if detail is not None and not isinstance(detail, str):
        detail = json.dumps(detail, separators=(",", ":"))
    return {
        "at_us": by.at_us,
        "actor": by.name[:200],
        "action": action,
        "target": target[:200],
        "detail": detail,
    }


def write_audit(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if len(rows) == 1:
        _INSERT_AUDIT.execute(conn, rows[0])  # the usual case, and cheaper than a batch of one
    else:
        _INSERT_AUDIT.executemany(conn, rows)


class SqlAccounts:
    """Mixed into ``SqlStore``, which provides the transactions."""

    async def _write(self, fn: Callable[[Connection], T], *, short: bool = False) -> T:
        raise NotImplementedError

    async def _read(self, fn: Callable[[Connection], T], *, short: bool = False) -> T:
        raise NotImplementedError

    _dialect: SqlDialect

    async def _row_by_key(self, query: Select[Any], **key: Any) -> Row[Any] | None:
        """The one row ``query`` finds by its key: a short read (see ``SqlStore``)."""
        return await self._read(lambda conn: conn.execute(query, key).first(), short=True)

    # Secrets -----------------------------------------------------------------------------------

    async def put_secret(self, name: str, ciphertext: str, *, by: Actor) -> bool:
        put = self._dialect.upsert(secrets, ["name"], replace=["ciphertext", "updated_us"])
        values = {"name": name, "ciphertext": ciphertext, "created_us": by.at_us}
        put = self._dialect.returning(
            put.values(values | {"updated_us": by.at_us}), secrets.c.created_us
        )

        def tx(conn: Connection) -> bool:
            created_us: int = conn.execute(put).scalar_one()
            write_audit(conn, [audit_row(by, "secret.set", name)])
            return created_us == by.at_us

        return await self._write(tx)

    async def get_secret(self, name: str) -> SecretRecord | None:
        row = await self._row_by_key(_SECRET_BY_NAME, b_name=name)
        return None if row is None else _secret(row)

    async def list_secrets(self) -> list[SecretRecord]:
        query = select(secrets).order_by(secrets.c.name)
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [_secret(row) for row in rows]

    async def delete_secret(self, name: str, *, by: Actor) -> None:
        def tx(conn: Connection) -> None:
            if not conn.execute(secrets.delete().where(secrets.c.name == name)).rowcount:
                raise SecretNotFound(name)
            write_audit(conn, [audit_row(by, "secret.delete", name)])

        await self._write(tx)

    # Users -------------------------------------------------------------------------------------

    async def add_user(
        self, name: str, password_hash: str, scopes: frozenset[Scope], *, by: Actor
    ) -> UserRecord:
        def tx(conn: Connection) -> UserRecord:
            generation = self._next_generation(conn, name)
            user = UserRecord(name, password_hash, scopes, generation, by.at_us, by.at_us)
            conn.execute(insert(users).values(user_values(user)))
            write_audit(conn, [audit_row(by, "user.add", name, _scopes_detail(user))])
            return user

        try:
            return await self._write(tx)
        except IntegrityError:
            raise UserExists(name) from None

    async def update_user(
        self,
        name: str,
        *,
        password_hash: str | None = None,
        scopes: frozenset[Scope] | None = None,
        by: Actor,
        action: str,
    ) -> UserRecord:
        values: dict[str, Any] = {"updated_us": by.at_us}
        if password_hash is not None:
            values["password_hash"] = password_hash
        if scopes is not None:
            values["scopes"] = scope_text(scopes)

        def tx(conn: Connection) -> UserRecord:
            generation = self._next_generation(conn, name)
            query = update(users).where(users.c.name == name).values(generation=generation)
            changed = self._dialect.update_returning(conn, query.values(values), list(users.c))
            row = changed[0] if changed else None
            if row is None:
                raise UserNotFound(name)  # rolls the new generation back with it
            user = _user(row)
            write_audit(conn, [audit_row(by, action, name, _scopes_detail(user))])
            return user

        return await self._write(tx)

    def _next_generation(self, conn: Connection, name: str) -> int:
        """The generation after the last ``name`` was ever given. Two changes of one name wait
        for each other here (on PostgreSQL for the row's lock): neither gets the other's."""
        bump = self._dialect.upsert(
            user_generations, ["name"], set_={"generation": user_generations.c.generation + 1}
        )
        bump = self._dialect.returning(
            bump.values(name=name, generation=1), user_generations.c.generation
        )
        generation: int = conn.execute(bump).scalar_one()
        return generation

    async def get_user(self, name: str) -> UserRecord | None:
        row = await self._row_by_key(_USER_BY_NAME, b_name=name)
        return None if row is None else _user(row)

    async def list_users(self) -> list[UserRecord]:
        query = select(users).order_by(users.c.name)
        return [_user(row) for row in await self._read(lambda conn: conn.execute(query).all())]

    async def remove_user(self, name: str, *, by: Actor) -> None:
        def tx(conn: Connection) -> None:
            if not conn.execute(users.delete().where(users.c.name == name)).rowcount:
                raise UserNotFound(name)
            write_audit(conn, [audit_row(by, "user.remove", name)])

        await self._write(tx)

    # API keys ----------------------------------------------------------------------------------

    async def add_api_key(self, key: ApiKeyRecord, *, by: Actor) -> None:
        def tx(conn: Connection) -> None:
            conn.execute(insert(api_keys).values(key_values(key)))
            detail: dict[str, Any] = {"name": key.name, "scopes": scope_text(key.scopes).split()}
            if key.expires_us is not None:
                detail["expires_us"] = key.expires_us
            write_audit(conn, [audit_row(by, "key.create", key.id, detail)])

        await self._write(tx)

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        row = await self._row_by_key(_KEY_BY_ID, b_id=key_id)
        return None if row is None else _key(row)

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        query = select(api_keys).order_by(api_keys.c.created_us, api_keys.c.id)
        return [_key(row) for row in await self._read(lambda conn: conn.execute(query).all())]

    async def revoke_api_key(self, key_id: str, *, by: Actor) -> ApiKeyRecord:
        def tx(conn: Connection) -> ApiKeyRecord:
            query = (
                update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_us.is_(None))
                .values(revoked_us=by.at_us)
            )
            if conn.execute(query).rowcount:
                write_audit(conn, [audit_row(by, "key.revoke", key_id)])
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
            if row is None:
                raise ApiKeyNotFound(key_id)
            return _key(row)

        return await self._write(tx)

    # The audit log -----------------------------------------------------------------------------

    async def list_audit(
        self,
        *,
        target: str | None = None,
        actor: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        query = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if target is not None:
            query = query.where(audit.c.target == target)
        if actor is not None:
            query = query.where(audit.c.actor == actor)
        if before_id is not None:
            query = query.where(audit.c.id < before_id)
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [AuditRecord(r.id, r.at_us, r.actor, r.action, r.target, r.detail) for r in rows]

    async def purge_audit(self, older_than_us: int, limit: int) -> int:
        # The oldest records by id, of which those old enough go: ids grow with time, so this
        # reads at most ``limit`` rows however long the log is.
        oldest = select(audit.c.id).order_by(audit.c.id).limit(limit).subquery()
        query = audit.delete().where(
            audit.c.id.in_(select(oldest.c.id)), audit.c.at_us < older_than_us
        )
        deleted: int = await self._write(lambda conn: conn.execute(query).rowcount)
        return deleted


def _scopes_detail(user: UserRecord) -> dict[str, Any]:
    return {"scopes": scope_text(user.scopes).split()}


def user_values(user: UserRecord) -> dict[str, Any]:
    return {
        "name": user.name,
        "password_hash": user.password_hash,
        "scopes": scope_text(user.scopes),
        "generation": user.generation,
        "created_us": user.created_us,
        "updated_us": user.updated_us,
    }


def _user(row: Row[Any]) -> UserRecord:
    return UserRecord(
        row.name,
        row.password_hash,
        parse_scopes(row.scopes),
        row.generation,
        row.created_us,
        row.updated_us,
    )


def key_values(key: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "secret_hash": key.secret_hash,
        "scopes": scope_text(key.scopes),
        "created_us": key.created_us,
        "created_by": key.created_by[:200],
        "expires_us": key.expires_us,
        "revoked_us": key.revoked_us,
    }


def _key(row: Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        row.id,
        row.name,
        row.secret_hash,
        parse_scopes(row.scopes),
        row.created_us,
        row.created_by,
        row.expires_us,
        row.revoked_us,
    )


def _secret(row: Row[Any]) -> SecretRecord:
    return SecretRecord(row.name, row.ciphertext, row.created_us, row.updated_us)
