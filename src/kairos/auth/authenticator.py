"""``Authenticator``: who a bearer token stands for, and password sign-in.

Three kinds of bearer token are accepted: the admin token (``KAIROS_ADMIN_TOKEN`` or the one
generated at first start: every scope), API keys (their own scopes) and the JWTs that
``POST /auth/token`` issues to users. Keys and users are read from the store on every request,
so a revoked key, a removed user or a changed password stops working at once, on every replica.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from kairos.auth.admin import TokenVerifier, load_admin_tokens
from kairos.auth.api_keys import matches, split_key
from kairos.auth.passwords import verify_password
from kairos.auth.throttle import LoginThrottle
from kairos.auth.tokens import TokenSigner, load_signing_key
from kairos.clock import Clock
from kairos.errors import TooManyAttempts, Unauthorized
from kairos.identity import ALL_SCOPES, Principal, Scope
from kairos.settings import Settings
from kairos.store import Store

__all__ = ["ADMIN_TOKEN_ACTOR", "Authenticator", "IssuedToken"]

log = logging.getLogger("kairos.auth")

ADMIN_TOKEN_ACTOR = "admin-token"
_ADMIN = Principal(ADMIN_TOKEN_ACTOR, ALL_SCOPES)
# argon2 takes 64 MiB per check: a burst of sign-ins must not take a replica's memory.
_CONCURRENT_PASSWORD_CHECKS = 2


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scopes: frozenset[Scope]


class Authenticator:
    def __init__(
        self, store: Store, admin: TokenVerifier, signer: TokenSigner, clock: Clock
    ) -> None:
        self._store = store
        self._admin = admin
        self._signer = signer
        self._clock = clock
        self._throttle = LoginThrottle()
        self._checks = asyncio.Semaphore(_CONCURRENT_PASSWORD_CHECKS)

    @classmethod
    async def load(
        cls, store: Store, settings: Settings, clock: Clock
    ) -> tuple[Authenticator, str | None]:
        """The authenticator, and the admin token generated at this start (to show once) if
        this is the first start without ``KAIROS_ADMIN_TOKEN``."""
        admin, generated = await load_admin_tokens(store, settings.admin_token)
        key = await load_signing_key(store, settings.jwt_secret)
        return cls(store, admin, TokenSigner(key, settings.token_ttl), clock), generated

    async def authenticate(self, token: str) -> Principal:
        """Raise ``Unauthorized`` saying why a token is not accepted."""
        if self._admin.verify(token):
            return _ADMIN
        key = split_key(token)
        if key is not None:
            return await self._api_key(*key)
        if token.count(".") == 2:
            return await self._user_token(token)
        raise Unauthorized("Invalid bearer token")

    async def sign_in(
        self, name: str, password: str, requested: frozenset[Scope] | None, client: str
    ) -> IssuedToken:
        """A token for a user whose password matches, with the scopes asked for (all of the
        user's if None) that the user has. Repeated failures for one name or from one address
        are slowed down (``TooManyAttempts``), and logged."""
        keys = (f"user:{name}", f"address:{client}")
        now_s = self._clock.now_us() / 1e6
        wait_s = self._throttle.wait_s(keys, now_s)
        if wait_s > 0:
            log.warning("sign-in as %r from %s refused for %.0f s more", name, client, wait_s)
            raise TooManyAttempts(wait_s)
        user = await self._store.get_user(name)
        async with self._checks:
            ok = await asyncio.to_thread(
                verify_password, None if user is None else user.password_hash, password
            )
        if user is None or not ok:
            failures = self._throttle.failed(keys, self._clock.now_us() / 1e6)
            log.warning("failed sign-in as %r from %s (%d in a row)", name, client, failures)
            raise Unauthorized("Incorrect user name or password")
        self._throttle.succeeded(keys[0])
        scopes = user.scopes if requested is None else user.scopes & requested
        token = self._signer.issue(user, scopes, self._clock.now_us() // 1_000_000)
        log.info("%r signed in from %s", name, client)
        return IssuedToken(token, self._signer.ttl_s, scopes)

    @property
    def token_ttl_s(self) -> int:
        return self._signer.ttl_s

    def mac(self, purpose: str, value: str) -> str:
        """See ``TokenSigner.mac``."""
        return self._signer.mac(purpose, value)

    async def _api_key(self, key_id: str, secret: str) -> Principal:
        key = await self._store.get_api_key(key_id)
        if key is None or not matches(secret, key.secret_hash):
            raise Unauthorized("Invalid bearer token")
        if key.revoked_us is not None:
            raise Unauthorized("This API key has been revoked")
        if not key.usable(self._clock.now_us()):
            raise Unauthorized("This API key has expired")
        return Principal(f"key:{key.id}", key.scopes)

    async def _user_token(self, token: str) -> Principal:
        claims = self._signer.read(token, self._clock.now_us() // 1_000_000)
        user = await self._store.get_user(claims.user)
        if user is None:
            raise Unauthorized(f"User {claims.user!r} no longer exists")
        if user.generation != claims.generation:
            raise Unauthorized("The user's password or scopes changed; sign in again")
        # The token's scopes, never more than the user has now.
        return Principal(f"user:{user.name}", claims.scopes & user.scopes)
