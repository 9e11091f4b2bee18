"""One store suite, run against every backend: memory, a SQLite file, real PostgreSQL, real
MariaDB and real Redis (each Redis test under a key prefix of its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kairos.store import Store, store_for_url
from tests.support import mariadb
from tests.support.postgres import create_database, drop_database, require_postgres
from tests.support.redis import redis_store_url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    require_postgres()
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    mariadb.require_mariadb()
    url = mariadb.create_database()
    yield url
    mariadb.drop_database(url)


@pytest.fixture(
    params=[
        "memory",
        "sqlite-file",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "redis":
        async with redis_store_url() as url:
            yield url
        return
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        await _empty(url)
        yield url
    elif request.param == "mariadb":
        url = request.getfixturevalue("mariadb_url")
        mariadb.empty_database(url)
        yield url
    elif request.param == "memory":
        yield "memory://"
    else:
        yield f"sqlite:///{tmp_path}/kairos.db"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = store_for_url(store_url)
    await opened.open()
    yield opened
    await opened.close()


async def _empty(url: str) -> None:
    """Each test starts from empty tables in the shared PostgreSQL database."""
    import psycopg
    from sqlalchemy.engine import make_url

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(plain, autocommit=True) as conn:
        # Every table of Kairos's (not the migrations' own): a table added later is emptied
        # too, so no test sees what another left behind, whatever their order.
        listed = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename LIKE 'kairos%'"
        )
        tables = [row[0] for row in await listed.fetchall()]
        if tables:
            await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
