"""Fixtures every end-to-end test file may use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import TargetProcess


@pytest.fixture
def target(tmp_path: Path) -> Iterator[TargetProcess]:
    """The recording HTTP target, in a process of its own."""
    process = TargetProcess(tmp_path / "deliveries.jsonl")
    yield process
    process.stop()
