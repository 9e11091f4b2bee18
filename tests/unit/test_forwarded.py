"""``X-Forwarded-Prefix`` from a trusted proxy is the path the app is served under, for the
UI's links, forms, assets, redirects and cookie and the API docs' URLs; from any other client
it changes nothing. (``tests/browser/test_behind_a_proxy.py`` drives the UI through a real
proxy.)"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from kairos.api import create_app
from kairos.settings import Settings

ADMIN = "admin-token-for-the-proxy-tests"
PREFIXED = {"X-Forwarded-Prefix": "/scheduler"}
PROXY = ("10.1.2.3", 40000)
OTHER = ("192.0.2.7", 40000)


@pytest.fixture
def app() -> object:
    settings = Settings(
        database_url="memory://", admin_token=ADMIN, trusted_proxies="10.0.0.0/8,127.0.0.1"
    )
    return create_app(settings)


def client(app: object, peer: tuple[str, int]) -> TestClient:
    return TestClient(app, follow_redirects=False, client=peer)  # type: ignore[arg-type]


def urls(html: str) -> list[str]:
    """Where a page's links go, forms post, htmx asks and assets come from (not "#main")."""
    found = re.findall(r'(?:href|src|action|hx-get|hx-post)="([^"]+)"', html)
    return [url for url in found if not url.startswith(("#", "?"))]


def test_from_a_trusted_proxy_the_prefix_starts_every_url(app: object) -> None:
    with client(app, PROXY) as proxy:
        assert proxy.get("/", headers=PREFIXED).headers["location"] == "/scheduler/ui"
        to_login = proxy.get("/ui/jobs", headers=PREFIXED).headers["location"]
        assert to_login == "/scheduler/ui/login?next=%2Fscheduler%2Fui%2Fjobs"
        login = proxy.get("/ui/login", headers=PREFIXED)
        assert login.status_code == 200
        assert urls(login.text)
        assert all(url.startswith("/scheduler/ui/") for url in urls(login.text))
        signed = proxy.post(
            "/ui/login", data={"token": ADMIN, "next": "/scheduler/ui/jobs"}, headers=PREFIXED
        )
        assert signed.headers["location"] == "/scheduler/ui/jobs"
        assert "Path=/scheduler/ui" in signed.headers["set-cookie"]
        # The cookie is the browser's for /scheduler/ui: the proxy passes it on to /ui.
        session = {"Cookie": f"kairos_session={ADMIN}"}
        jobs = proxy.get("/ui/jobs", headers=PREFIXED | session)
        assert jobs.status_code == 200
        assert all(url.startswith("/scheduler/ui/") for url in urls(jobs.text))
        docs = proxy.get("/docs", headers=PREFIXED).text
        assert "/scheduler/openapi.json" in docs
        # A proxy that serves the app at its root says so with "/" (or nothing).
        assert proxy.get("/", headers={"X-Forwarded-Prefix": "/"}).headers["location"] == "/ui"


def test_from_any_other_client_the_prefix_is_ignored(app: object) -> None:
    with client(app, OTHER) as other:
        assert other.get("/", headers=PREFIXED).headers["location"] == "/ui"
        to_login = other.get("/ui/jobs", headers=PREFIXED).headers["location"]
        assert to_login == "/ui/login?next=%2Fui%2Fjobs"
        login = other.get("/ui/login", headers=PREFIXED).text
        assert not [url for url in urls(login) if url.startswith("/scheduler")]


def test_without_trusted_proxies_no_client_moves_the_app() -> None:
    app = create_app(Settings(database_url="memory://", admin_token=ADMIN))
    with client(app, ("127.0.0.1", 40000)) as local:
        assert local.get("/", headers=PREFIXED).headers["location"] == "/ui"


@pytest.mark.parametrize("sent", ["scheduler", "/a/../b", "/a b", "//evil.example", "/x?y"])
def test_a_prefix_that_is_not_a_path_is_refused_naming_the_header(app: object, sent: str) -> None:
    with client(app, PROXY) as proxy:
        answer = proxy.get("/healthz", headers={"X-Forwarded-Prefix": sent})
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("X-Forwarded-Prefix: a path such as /scheduler")


def test_the_trusted_proxies_must_be_addresses_or_networks() -> None:
    with pytest.raises(
        ValidationError, match=r"'proxy\.local' is neither an address nor a network"
    ):
        Settings(trusted_proxies="10.0.0.1,proxy.local")
    assert Settings(trusted_proxies=" 10.0.0.1 , ::1 ").trusted_proxies == ["10.0.0.1", "::1"]
