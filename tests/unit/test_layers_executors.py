"""The engine knows nothing of HTTP: calls and webhooks go out through ``kairos.executors``."""

from __future__ import annotations

from tests.unit.test_layers import upward


def test_the_engine_speaks_no_http_itself() -> None:
    assert upward("kairos.engine", ("aiohttp", "httpx")) == {}


def test_the_check_sees_the_executors_speak_it() -> None:
    assert "kairos.executors.webhooks" in upward("kairos.executors", ("aiohttp",))
