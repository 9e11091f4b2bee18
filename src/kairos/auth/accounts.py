"""``Accounts``: adding and removing users and API keys, for the API and the CLI alike. Every
change is recorded in the audit log with it."""

from __future__ import annotations

import asyncio
import re

from kairos.auth.api_keys import new_key
from kairos.auth.passwords import MAX_PASSWORD, MIN_PASSWORD, hash_password
from kairos.clock import Clock
from kairos.errors import InvalidField
from kairos.identity import MAX_KEY_LIFETIME_S, Actor, ApiKeyRecord, Scope, UserRecord
from kairos.store import Store

__all__ = ["MAX_KEY_LIFETIME_S", "USER_NAME_PATTERN", "Accounts"]

USER_NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,64}$"
_USER_NAME = re.compile(USER_NAME_PATTERN)


class Accounts:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    # Users -------------------------------------------------------------------------------------

    async def add_user(
        self, name: str, password: str, scopes: frozenset[Scope], *, actor: str
    ) -> UserRecord:
        """Raise ``InvalidField`` for a bad name, password or scope list, ``UserExists``."""
        if not _USER_NAME.match(name):
            raise InvalidField(["name"], "1-64 of letters, digits and _ . @ -")
        _check_scopes(scopes)
        password_hash = await _hash(password)
        return await self._store.add_user(name, password_hash, scopes, by=self._actor(actor))

    async def set_password(self, name: str, password: str, *, actor: str) -> UserRecord:
        """A new password; tokens issued before stop working. Raise ``UserNotFound``."""
        password_hash = await _hash(password)
        by = self._actor(actor)
        return await self._store.update_user(
            name, password_hash=password_hash, by=by, action="user.passwd"
        )

    async def set_scopes(self, name: str, scopes: frozenset[Scope], *, actor: str) -> UserRecord:
        """New scopes; tokens issued before stop working. Raise ``UserNotFound``."""
        _check_scopes(scopes)
        by = self._actor(actor)
        return await self._store.update_user(name, scopes=scopes, by=by, action="user.scopes")

    async def remove_user(self, name: str, *, actor: str) -> None:
        await self._store.remove_user(name, by=self._actor(actor))

    async def list_users(self) -> list[UserRecord]:
        return await self._store.list_users()

    # API keys ----------------------------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        scopes: frozenset[Scope],
        *,
        expires_in_s: float | None,
        actor: str,
    ) -> tuple[ApiKeyRecord, str]:
        """A new key and its whole text, which is not kept anywhere: show it once."""
        if not 1 <= len(name) <= 128:
            raise InvalidField(["name"], "1-128 characters")
        _check_scopes(scopes)
        if expires_in_s is not None and not 0 < expires_in_s <= MAX_KEY_LIFETIME_S:
            message = f"must be a positive number of seconds, at most {MAX_KEY_LIFETIME_S}"
            raise InvalidField(["expires_in"], message)
        by = self._actor(actor)
        expires_us = None if expires_in_s is None else by.at_us + round(expires_in_s * 1e6)
        key_id, text, digest = new_key()
        key = ApiKeyRecord(key_id, name, digest, scopes, by.at_us, actor, expires_us)
        await self._store.add_api_key(key, by=by)
        return key, text

    async def revoke_key(self, key_id: str, *, actor: str) -> ApiKeyRecord:
        """Effective at once on every replica. Raise ``ApiKeyNotFound``."""
        return await self._store.revoke_api_key(key_id, by=self._actor(actor))

    async def list_keys(self) -> list[ApiKeyRecord]:
        return await self._store.list_api_keys()

    # Internals ---------------------------------------------------------------------------------

    def _actor(self, name: str) -> Actor:
        return Actor(name, self._clock.now_us())


def _check_scopes(scopes: frozenset[Scope]) -> None:
    if not scopes:
        raise InvalidField(["scopes"], "name at least one scope")


async def _hash(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidField(["password"], f"{MIN_PASSWORD}-{MAX_PASSWORD} characters")
    return await asyncio.to_thread(hash_password, password)
