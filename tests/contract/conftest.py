"""One store suite, run against every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kairos.store import Store, store_for_url


@pytest.fixture(params=["memory", "sqlite-file"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = "sqlite://" if request.param == "memory" else f"sqlite:///{tmp_path}/kairos.db"
    opened = store_for_url(url)
    await opened.open()
    yield opened
    await opened.close()
