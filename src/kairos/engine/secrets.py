"""``Secrets``: the named secrets job specs refer to, and the resolution of references.

A secret's value is encrypted here (AES-256-GCM, its name bound in as associated data, so a
stored value cannot be moved to another name) before the store sees it, under a key derived
from ``KAIROS_SECRETS_KEY``; no method returns a value to an adapter. References
(``kairos.references``) are checked when a spec is put, and resolved when its target is
called: environment variables from this process's environment, secrets from the store through
a cache of a few seconds, so a burst of calls does not read the store for each.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kairos.errors import KairosError, SecretsKeyMissing, UnresolvedReferences
from kairos.identity import Actor
from kairos.models import JobSpec, Webhook
from kairos.references import Reference, check_secret_name
from kairos.store import SecretRecord, Store
from kairos.targets import TargetSpec, TemplateAt

__all__ = ["CACHE_TTL_S", "Secrets", "UnresolvableReference"]

CACHE_TTL_S = 5.0
"""How long a secret read from the store is used before it is read again. A change made on
this node is seen at once; one made on another node within this time."""
_NONCE_BYTES = 12
_KEY_CONTEXT = b"kairos secrets v1\0"


class UnresolvableReference(KairosError):
    """A reference that cannot be resolved now; the message names the reference, never a
    value."""


class Secrets:
    def __init__(
        self,
        store: Store,
        key: str | None,
        *,
        environ: Mapping[str, str] = os.environ,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cipher = None if key is None else AESGCM(_derive(key))
        self._environ = environ
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, str | None]] = {}

    @property
    def keeps_secrets(self) -> bool:
        """A key is set: secrets can be set and resolved."""
        return self._cipher is not None

    # Managing ----------------------------------------------------------------------------------

    async def set(self, name: str, value: str, *, by: Actor) -> bool:
        """Keep ``value`` encrypted under ``name``; True when the secret is new.
        ``SecretsKeyMissing`` without a key; ``ValueError`` for a bad name."""
        check_secret_name(name)
        cipher = self._need_cipher()
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + cipher.encrypt(nonce, value.encode(), name.encode())
        created = await self._store.put_secret(
            name, base64.urlsafe_b64encode(sealed).decode(), by=by
        )
        self._cache[name] = (self._monotonic() + CACHE_TTL_S, value)
        return created

    async def delete(self, name: str, *, by: Actor) -> None:
        """Forget the secret; ``SecretNotFound``. Jobs that refer to it stay: their calls fail,
        naming the reference, until it is set again or they change."""
        await self._store.delete_secret(name, by=by)
        self._cache.pop(name, None)

    async def list(self) -> list[SecretRecord]:
        """Every secret (its value encrypted), by name."""
        return await self._store.list_secrets()

    # Checking and resolving --------------------------------------------------------------------

    async def check(self, spec: JobSpec) -> None:
        """``UnresolvedReferences`` naming each field whose references this server cannot
        resolve now: an environment variable unset here, a secret unknown (or no key)."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        known: dict[str, bool] = {}
        for loc, template in spec.templates:
            for reference in template.references:
                problem = await self._problem(reference, known)
                if problem is not None:
                    problems.append((loc, problem))
        if problems:
            raise UnresolvedReferences(problems)

    async def _problem(self, reference: Reference, known: dict[str, bool]) -> str | None:
        if reference.kind == "env":
            if reference.name in self._environ:
                return None
            return f"{reference}: {reference.name} is not set in the server's environment"
        if self._cipher is None:
            return f"{reference}: this server keeps no secrets (KAIROS_SECRETS_KEY is not set)"
        if reference.name not in known:
            known[reference.name] = await self._store.get_secret(reference.name) is not None
        return None if known[reference.name] else f"{reference}: no secret has that name"

    async def resolved_target(self, target: TargetSpec) -> TargetSpec:
        """``target`` with its references replaced by their values, to be called;
        ``UnresolvableReference`` naming the first that has none."""
        return target.resolved((await self._values(target.templates)).__getitem__)

    async def resolved_webhook(self, hook: Webhook) -> Webhook:
        """``hook`` with its secret's references replaced, as ``resolved_target``."""
        return hook.resolved((await self._values(hook.templates)).__getitem__)

    async def _values(self, templates: Sequence[TemplateAt]) -> dict[Reference, str]:
        values: dict[Reference, str] = {}
        for _, template in templates:
            for reference in template.references:
                if reference not in values:
                    values[reference] = await self._value(reference)
        return values

    async def _value(self, reference: Reference) -> str:
        if reference.kind == "env":
            value = self._environ.get(reference.name)
            if value is None:
                raise UnresolvableReference(
                    f"{reference}: {reference.name} is not set in the server's environment"
                )
            return value
        value = await self._secret(reference.name)
        if value is None:
            raise UnresolvableReference(f"{reference}: no secret has that name")
        return value

    async def _secret(self, name: str) -> str | None:
        cipher = self._cipher
        if cipher is None:
            raise UnresolvableReference(
                f"${{secret:{name}}}: this server keeps no secrets (KAIROS_SECRETS_KEY is not set)"
            )
        now = self._monotonic()
        cached = self._cache.get(name)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self._store.get_secret(name)
        value = None if record is None else _open(cipher, record)
        self._cache[name] = (now + CACHE_TTL_S, value)
        return value

    def _need_cipher(self) -> AESGCM:
        if self._cipher is None:
            raise SecretsKeyMissing()
        return self._cipher


def _derive(key: str) -> bytes:
    """A 256-bit AES key from the configured key, whatever its form."""
    return hashlib.sha256(_KEY_CONTEXT + key.encode()).digest()


def _open(cipher: AESGCM, record: SecretRecord) -> str:
    sealed = base64.urlsafe_b64decode(record.ciphertext)
    try:
        plain = cipher.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], record.name.encode())
    except InvalidTag:
        raise UnresolvableReference(
            f"${{secret:{record.name}}} cannot be decrypted: it was set under another "
            "KAIROS_SECRETS_KEY"
        ) from None
    return plain.decode()
