"""Fixtures every end-to-end test file may use."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.postgres import create_database, drop_database, require_postgres
from tests.support.server import KairosProcess, TargetProcess


@pytest.fixture
def target(tmp_path: Path) -> Iterator[TargetProcess]:
    """The recording HTTP target, in a process of its own."""
    process = TargetProcess(tmp_path / "deliveries.jsonl")
    yield process
    process.stop()


@pytest.fixture
def database() -> Iterator[str]:
    """A new PostgreSQL database, dropped afterwards."""
    require_postgres()
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def replicas(database: str, tmp_path: Path) -> Iterator[list[KairosProcess]]:
    """Three ``kairos serve`` replicas on ``database``."""
    with ExitStack() as stack:
        nodes = [
            stack.enter_context(KairosProcess(database, log_path=tmp_path / f"node{i}.log"))
            for i in range(3)
        ]
        yield nodes
