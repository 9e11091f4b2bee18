"""The admin token: ``KAIROS_ADMIN_TOKEN``, or one generated at first start.

Only a SHA-256 hash of a generated token is stored: the token is random and long, so a fast hash
is enough to make a leaked database useless for calling the API.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from kairos.store import Store

__all__ = ["ADMIN_TOKEN_KEY", "TokenVerifier", "load_admin_tokens"]

ADMIN_TOKEN_KEY = "admin_token_sha256"


class TokenVerifier:
    def __init__(self, hashes: list[str]) -> None:
        self._hashes = [bytes.fromhex(h) for h in hashes]

    def verify(self, token: str) -> bool:
        digest = _digest(token)
        # Compare against every hash so the time taken says nothing about which one matched.
        matches = [hmac.compare_digest(digest, known) for known in self._hashes]
        return any(matches)


async def load_admin_tokens(
    store: Store, configured: str | None
) -> tuple[TokenVerifier, str | None]:
    """The verifier for admin tokens, and the token generated now if this is the first start
    without ``KAIROS_ADMIN_TOKEN`` (to show once; it is not kept in clear anywhere)."""
    hashes = []
    if configured:
        hashes.append(_digest(configured).hex())
    stored = await store.get_meta(ADMIN_TOKEN_KEY)
    generated = None
    if stored is None and not configured:
        candidate = "kairos_" + secrets.token_urlsafe(32)
        stored = await store.set_meta_if_absent(ADMIN_TOKEN_KEY, _digest(candidate).hex())
        if stored == _digest(candidate).hex():
            generated = candidate
    if stored is not None:
        hashes.append(stored)
    return TokenVerifier(hashes), generated


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
