"""What a target answers is kept whatever characters it holds, on every SQL backend: PostgreSQL
refuses NUL in text, so a NUL is kept as U+FFFD (as undecodable bytes are), and the outcomes
recorded with it are not lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kairos.engine import Scheduler
from kairos.models import RunStatus
from kairos.settings import Settings
from tests.integration.test_engine import soon, spec, wait_runs
from tests.support.databases import SQL_BACKENDS, new_sql_database
from tests.support.target import RecordingTarget


@pytest.fixture(params=SQL_BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with new_sql_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def target() -> AsyncIterator[RecordingTarget]:
    async with RecordingTarget() as server:
        yield server


async def test_a_nul_in_an_answer_is_kept_as_a_replacement_character(
    database: str, target: RecordingTarget
) -> None:
    scheduler = Scheduler.from_settings(Settings(database_url=database, shutdown_grace=0.5))
    await scheduler.start()
    try:
        when = soon(0.5)  # both due at once: their outcomes are written together
        await scheduler.create_job("nul", spec(target.url("/nul?body=a%00b"), when))
        await scheduler.create_job("plain", spec(target.url("/plain"), when))
        for job_id, excerpt in (("nul", "a\ufffdb"), ("plain", "ok")):
            runs = await wait_runs(scheduler, job_id, lambda r: bool(r) and r[0].finished_us)
            assert (runs[0].status, runs[0].response_excerpt) == (RunStatus.SUCCEEDED, excerpt)
    finally:
        await scheduler.stop()
