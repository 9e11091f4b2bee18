"""The README's two commands may run in either order or at once: the test command installs into
an environment of its own, and installing Kairos into another environment does not disturb a
server running from this one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import httpx
import pytest

from tests.support.server import KairosProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def make_dry_run(target: str) -> list[str]:
    """The commands ``make <target>`` would run, with the Makefile's own defaults."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed: the README's test command needs it")
    env = {k: v for k, v in os.environ.items() if k not in ("VENV", "CHECK_VENV", "MAKEFLAGS")}
    result = subprocess.run(
        ["make", "-n", "-C", str(REPO), target],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if not line.startswith("make")]


def test_the_test_command_never_touches_the_serving_environment() -> None:
    run = make_dry_run("run")
    assert run[-1] == ".venv/bin/kairos serve"
    assert all(".venv" in line and ".venv-check" not in line for line in run), run
    check = make_dry_run("check")
    assert any("pytest" in line for line in check)
    for line in check:
        assert ".venv/" not in line, line
        assert ".venv-check" in line, line


def test_a_server_keeps_answering_while_kairos_is_installed_beside_it(tmp_path: Path) -> None:
    other = tmp_path / "other-venv"
    venv.create(other, with_pip=False)
    scheme = "venv" if "venv" in sysconfig.get_scheme_names() else "posix_prefix"
    site = Path(sysconfig.get_path("purelib", scheme, vars={"base": str(other)}))
    serving = {path: path.stat().st_mtime_ns for path in _kairos_files()}

    offline = ["--no-deps", "--no-index", "--no-build-isolation"]  # all it needs is here
    with KairosProcess(str(tmp_path / "k.db")) as server:
        install = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                *offline,
                "--target",
                str(site),
                str(REPO),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        answers = []
        while True:
            answers.append(httpx.get(f"{server.base_url}/ui/login", timeout=10).status_code)
            try:
                output, _ = install.communicate(timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                continue
        assert install.returncode == 0, output
        answers.append(httpx.get(f"{server.base_url}/ui/login", timeout=10).status_code)

    assert set(answers) == {200}
    assert len(answers) > 2  # the server answered while the install ran
    assert (site / "kairos" / "__init__.py").is_file()
    assert {path: path.stat().st_mtime_ns for path in _kairos_files()} == serving


def _kairos_files() -> list[Path]:
    """What this environment's Kairos is installed as (its metadata and import hooks)."""
    import importlib.metadata

    distribution = importlib.metadata.distribution("kairos-scheduler")
    files = [Path(str(distribution.locate_file(f))) for f in distribution.files or []]
    return [path for path in files if path.exists()]
