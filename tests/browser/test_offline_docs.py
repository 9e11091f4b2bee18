"""``/docs`` and ``/redoc`` render in a headless Chromium that may reach nothing but the server:
their scripts and styles are served by Kairos, not a CDN."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.server import KairosProcess

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KairosProcess]:
    with KairosProcess(f"sqlite:///{tmp_path_factory.mktemp('docs')}/k.db") as process:
        yield process


@pytest.fixture
def offline_page(browser: Any, server: KairosProcess) -> Iterator[tuple[Any, list[str]]]:
    """A page whose requests anywhere but the server are aborted, and the URLs it tried."""
    context = browser.new_context(base_url=server.base_url)
    served = urlsplit(server.base_url).netloc
    elsewhere: list[str] = []

    def only_the_server(route: Any) -> None:
        if urlsplit(route.request.url).netloc == served:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page, elsewhere
    context.close()


def test_swagger_ui_renders_with_the_network_blocked(offline_page: tuple[Any, list[str]]) -> None:
    page, elsewhere = offline_page
    page.goto("/docs")
    page.locator(".swagger-ui .info .title").get_by_text("Kairos").wait_for()
    page.locator(".opblock-summary-path", has_text="/jobs/{job_id}").first.wait_for()
    assert elsewhere == []


def test_redoc_renders_with_the_network_blocked(offline_page: tuple[Any, list[str]]) -> None:
    page, elsewhere = offline_page
    page.goto("/redoc")
    page.get_by_role("heading", name="Kairos").first.wait_for()
    page.get_by_text("/jobs/{job_id}").first.wait_for()
    assert elsewhere == []
