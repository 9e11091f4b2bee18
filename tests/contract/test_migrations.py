"""The schema the migrations build is exactly the one the code declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from kairos.store import store_for_url
from kairos.store.schema import metadata


async def test_migrated_sqlite_schema_equals_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    store = store_for_url(url)
    await store.open()
    await store.close()
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


async def test_migrations_are_idempotent_on_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    for _ in range(2):
        store = store_for_url(url)
        await store.open()
        await store.close()
