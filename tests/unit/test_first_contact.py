"""What a first visit finds: ``/`` leads to the UI, and the docs pages load every asset from
the server itself."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from kairos.api import create_app
from kairos.settings import Settings


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url="memory://", admin_token="t"))) as test:
        yield test


def test_the_root_redirects_to_the_ui(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/ui"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_the_server(client: TestClient, page: str) -> None:
    html = client.get(page)
    assert html.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
    assets = [url for url in urls if not url.startswith("/openapi.json")]
    assert len(assets) >= 2, urls  # a script and an icon at least
    for url in assets:
        assert url.startswith("/docs/assets/"), url
        assert client.get(url).status_code == 200, url
    assert "fonts.googleapis" not in html.text
    assert "cdn." not in html.text


def test_the_oauth2_redirect_page_is_served(client: TestClient) -> None:
    assert "oauth2" in client.get("/docs/oauth2-redirect").text.lower()
