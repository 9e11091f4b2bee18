"""What every store guarantees for named secrets, and that values are encrypted at rest."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.engine import make_url

from kairos.engine.secrets import Secrets, UnresolvableReference
from kairos.errors import SecretNotFound
from kairos.identity import Actor
from kairos.models import Webhook
from kairos.store import SecretRecord, Store
from tests.contract.test_store import NOW, S

BY = Actor("user:ann", NOW)
LATER = Actor("user:bo", NOW + S)
VALUE = "s3cr3t-value-that-must-not-be-stored-in-clear"
HOOK = Webhook.model_validate({"url": "https://hooks.example.com/", "secret": "${secret:crawler}"})


async def test_secrets_are_set_replaced_read_listed_and_deleted(store: Store) -> None:
    assert await store.put_secret("crawler", "sealed-1", by=BY) is True
    assert await store.put_secret("api.token", "sealed-2", by=BY) is True
    assert await store.put_secret("crawler", "sealed-3", by=LATER) is False
    assert await store.get_secret("crawler") == SecretRecord("crawler", "sealed-3", NOW, NOW + S)
    assert await store.get_secret("nothing") is None
    assert [s.name for s in await store.list_secrets()] == ["api.token", "crawler"]
    await store.delete_secret("crawler", by=LATER)
    assert await store.get_secret("crawler") is None
    with pytest.raises(SecretNotFound):
        await store.delete_secret("crawler", by=LATER)
    actions = [(r.action, r.target, r.actor, r.detail) for r in await store.list_audit()]
    assert actions == [
        ("secret.delete", "crawler", "user:bo", None),
        ("secret.set", "crawler", "user:bo", None),
        ("secret.set", "api.token", "user:ann", None),
        ("secret.set", "crawler", "user:ann", None),
    ]


async def test_a_value_is_stored_encrypted_and_read_back_through_the_key(
    store: Store, store_url: str
) -> None:
    secrets = Secrets(store, "a-key-of-sixteen-or-more")
    await secrets.set("crawler", VALUE, by=BY)
    stored = await store.get_secret("crawler")
    assert stored is not None
    assert VALUE not in stored.ciphertext
    assert VALUE.encode() not in _raw_bytes(store_url)
    fresh = Secrets(store, "a-key-of-sixteen-or-more")  # no cache: read from the store
    assert (await fresh.resolved_webhook(HOOK)).secret == VALUE
    other_key = Secrets(store, "another-key-entirely")
    with pytest.raises(UnresolvableReference, match=r"\$\{secret:crawler\} cannot be decrypted"):
        await other_key.resolved_webhook(HOOK)


def _raw_bytes(store_url: str) -> bytes:
    """Everything the database file holds (SQLite), or the secrets table's rows (PostgreSQL)."""
    if store_url.startswith("sqlite"):
        path = make_url(store_url).database
        assert path is not None
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(FULL)")
        with open(path, "rb") as file:
            return file.read()
    if store_url.startswith("postgresql"):
        import psycopg

        plain = make_url(store_url).set(drivername="postgresql")
        with psycopg.connect(plain.render_as_string(hide_password=False)) as conn:
            rows = conn.execute("SELECT name, ciphertext FROM kairos_secrets").fetchall()
        return repr(rows).encode()
    return b""  # memory: what the store holds is checked through get_secret above
