"""Passwords, hashed with argon2id (RFC 9106's second recommended profile: 64 MiB, 3 passes)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["MAX_PASSWORD", "MIN_PASSWORD", "hash_password", "verify_password"]

MIN_PASSWORD = 8
MAX_PASSWORD = 1024

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Slow on purpose (tens of milliseconds): call it off the event loop."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash (an unknown user) a stand-in hash is checked,
    so the answer takes as long as for a real user and does not say which names exist."""
    try:
        return _hasher.verify(password_hash or _stand_in(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


@cache
def _stand_in() -> str:
    return _hasher.hash("kairos stand-in for users that do not exist")
