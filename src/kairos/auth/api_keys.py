"""API keys for machines: ``kairos_key_<id>_<secret>``. The id finds the key; only a SHA-256
hash of the secret is stored (the secret is random and long, so a fast hash is enough)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

__all__ = ["KEY_PREFIX", "matches", "new_key", "secret_digest", "split_key"]

KEY_PREFIX = "kairos_key_"
_KEY = re.compile(rf"^{KEY_PREFIX}([0-9a-f]{{16}})_([A-Za-z0-9_-]{{20,100}})$")


def new_key() -> tuple[str, str, str]:
    """A fresh key: its id, the whole key (shown once) and the hash of its secret."""
    key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}", secret_digest(secret)


def split_key(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of something shaped like an API key, else None."""
    found = _KEY.match(token)
    return None if found is None else (found[1], found[2])


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(secret_digest(secret), stored_digest)
