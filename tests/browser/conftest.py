"""The browser every UI test drives (Debian's Chromium through Playwright, no download), and
what a module of UI tests shares: a real ``kairos serve`` with an admin user, a real target."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import KairosProcess, TargetProcess, wait_until

CHROMIUM = os.environ.get("KAIROS_TEST_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "a password for the browser"
"""The password of ``ann``, the admin user of ``server``."""


def _chromium() -> str:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TargetProcess]:
    process = TargetProcess(tmp_path_factory.mktemp("target") / "deliveries.jsonl")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KairosProcess]:
    db = f"sqlite:///{tmp_path_factory.mktemp('ui')}/k.db"
    with KairosProcess(db) as process:
        command = ["users", "add", "ann", "-s", "admin", "--password-stdin", "--db", db]
        added = subprocess.run(
            [sys.executable, "-m", "kairos", *command],
            input=PASSWORD,
            capture_output=True,
            text=True,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        yield process


@pytest.fixture
def signed_in(browser: Any, server: KairosProcess) -> Iterator[Any]:
    """A page signed in as ``ann``: landed on the overview, then on the jobs list."""
    context = browser.new_context(base_url=server.base_url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/ui")
    page.get_by_label("User name").fill("ann")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="Overview").wait_for()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs").click()
    page.get_by_role("heading", name="Jobs").wait_for()
    yield page
    context.close()


def reload_until(page: Any, selector: str, timeout: float = 20) -> None:
    """Reload ``page`` until it has an element matching the CSS ``selector``."""

    def shown() -> bool:
        page.reload()
        return bool(page.locator(selector).count())

    wait_until(shown, timeout, interval=0.5, what=f"{selector!r} on {page.url}")
