"""``/readyz`` says whether the store can be written: a SQLite database that has no room left
answers 503 with SQLite's own reason, as a full disk would make it; a PostgreSQL database that
only reads says so."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from kairos.api import create_app
from kairos.errors import StoreUnavailable
from kairos.settings import Settings
from kairos.store import store_for_url
from tests.support.postgres import ADMIN_URL, create_database, drop_database, require_postgres
from tests.support.server import wait_until

ADMIN = "admin-secret-token"
JWT_SECRET = "a-signing-key-that-is-long-enough-for-hs256"
ROOM_PAGES = 40


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[str]:
    """A migrated database file that may grow by ``ROOM_PAGES`` pages and no more: SQLite's
    ``max_page_count`` on every connection to it makes SQLite answer "database or disk is
    full" as a full disk does."""
    path = tmp_path / "k.db"
    url = f"sqlite:///{path}"
    store = store_for_url(url)

    async def migrate() -> None:
        await store.open()
        await store.close()

    asyncio.run(migrate())
    with sqlite3.connect(path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]

    def cap(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        files = [row[2] for row in dbapi_connection.execute("PRAGMA database_list")]
        if str(path) in files:
            dbapi_connection.execute(f"PRAGMA max_page_count = {pages + ROOM_PAGES}")

    event.listen(Engine, "connect", cap)
    try:
        yield url
    finally:
        event.remove(Engine, "connect", cap)


def test_a_full_database_is_not_ready_and_says_why(capped: str) -> None:
    settings = Settings(database_url=capped, admin_token=ADMIN, jwt_secret=JWT_SECRET)
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").status_code == 200
        job = {
            "trigger": {"type": "cron", "expression": "0 2 * * *"},
            "target": {"url": "http://127.0.0.1:9/"},
            "description": "x" * 2000,
        }
        for n in range(ROOM_PAGES * 4):
            answer = client.put(f"/jobs/j{n}", json=job, headers=headers)
            if answer.status_code != 201:
                break
        assert answer.status_code == 503, answer.text
        assert "database or disk is full" in answer.json()["detail"]

        wait_until(lambda: client.get("/readyz").status_code == 503, 5, what="not ready")
        ready = client.get("/readyz").json()
        assert ready["status"] == "unavailable"
        assert "database or disk is full" in ready["detail"]
        assert client.get("/healthz").status_code == 200


@pytest.mark.postgres
async def test_a_read_only_postgresql_database_is_not_writable() -> None:
    require_postgres()
    url = create_database()
    try:
        writable = store_for_url(url)
        await writable.open()
        await writable.check_writable()
        await writable.close()
        name = make_url(url).database
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        read_only = store_for_url(url)
        await read_only.open()  # up to date: nothing to write
        try:
            with pytest.raises(StoreUnavailable) as refused:
                await read_only.check_writable()
        finally:
            await read_only.close()
        assert refused.value.detail == (
            "the database cannot be written: cannot execute INSERT in a read-only transaction"
        )
    finally:
        drop_database(url)
