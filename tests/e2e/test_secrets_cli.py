"""``kairos secrets`` against a real server: values go in from a variable or standard input,
never from an argument, and never come out."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ADMIN_TOKEN, KairosProcess

pytestmark = pytest.mark.e2e

VALUE = "cli-secret-value-31337"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KairosProcess]:
    db = tmp_path_factory.mktemp("secrets") / "k.db"
    env: dict[str, str | None] = {"KAIROS_SECRETS_KEY": "e2e-secrets-key-0123456789"}
    with KairosProcess(f"sqlite:///{db}", env=env) as process:
        yield process


def kairos(
    server: KairosProcess, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kairos", "secrets", *args],
        env=os.environ | {"KAIROS_URL": server.base_url, "KAIROS_TOKEN": ADMIN_TOKEN} | env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_set_from_stdin_and_from_a_variable_list_and_delete(
    server: KairosProcess, tmp_path: Path
) -> None:
    piped = kairos(server, "set", "crawler", stdin=VALUE + "\n")
    assert piped.returncode == 0, piped.stderr
    assert "Secret 'crawler' set." in piped.stdout
    from_env = kairos(server, "set", "crawler", "--from-env", "MY_VALUE", MY_VALUE=VALUE)
    assert from_env.returncode == 0, from_env.stderr
    assert "replaced" in from_env.stdout
    listed = kairos(server, "list", "--json")
    assert '"name": "crawler"' in listed.stdout
    assert VALUE not in listed.stdout + kairos(server, "list").stdout
    assert kairos(server, "delete", "crawler").returncode == 0
    missing = kairos(server, "delete", "crawler")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: HTTP 404: secret 'crawler' not found"
    unset = kairos(server, "set", "x", "--from-env", "KAIROS_TEST_UNSET_VARIABLE")
    assert unset.returncode == 1
    assert unset.stderr.strip() == "error: --from-env: KAIROS_TEST_UNSET_VARIABLE is not set"
