"""The schema the migrations build is exactly the one the code declares, on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from kairos.store import store_for_url
from kairos.store.schema import metadata
from tests.support.postgres import create_database, drop_database, require_postgres


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/m.db"
        return
    require_postgres()
    url = create_database()
    yield url
    drop_database(url)


def _schema_diff(url: str) -> list[object]:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    engine = create_engine(parsed)
    with engine.connect() as conn:
        diff: list[object] = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    return diff


async def test_migrated_schema_equals_the_models(fresh_url: str) -> None:
    store = store_for_url(fresh_url)
    await store.open()
    await store.close()
    assert _schema_diff(fresh_url) == []


async def test_replicas_starting_together_migrate_once(fresh_url: str) -> None:
    stores = [store_for_url(fresh_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    for store in stores:
        await store.close()
    again = store_for_url(fresh_url)
    await again.open()
    await again.close()
    assert _schema_diff(fresh_url) == []
