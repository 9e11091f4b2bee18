"""The ``kairos`` command as a newcomer meets it: its version, the database it says it uses (a
URL or a plain file path), read commands that never make an empty database, tables that never
cut an id, and job documents that go back as they came."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import kairos as package
from tests.support.server import ADMIN_TOKEN, KairosProcess

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"


def kairos(
    *args: str, cwd: Path | None = None, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kairos", *args],
        input=stdin,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "KAIROS_DATABASE_URL"} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KairosProcess]:
    # A plain file path for --db, as a newcomer would type it.
    with KairosProcess(str(tmp_path_factory.mktemp("contact") / "k.db")) as process:
        yield process


def on(server: KairosProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return kairos(*args, KAIROS_URL=server.base_url, KAIROS_TOKEN=ADMIN_TOKEN, **env)


def test_version_is_the_distributions() -> None:
    result = kairos("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"kairos {package.__version__}\n"
    assert importlib.metadata.version("kairos-scheduler") == package.__version__


@pytest.mark.parametrize(
    "command",
    [
        ("keys", "list"),
        ("users", "remove", "ann"),
        ("users", "scopes", "ann", "-s", "admin"),
        ("keys", "revoke", "k1"),
    ],
)
def test_commands_on_accounts_never_make_an_empty_database(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = kairos(*command, "--db", "elsewhere.db", cwd=tmp_path)
    assert result.returncode == 2
    assert f"error: no database at {tmp_path / 'elsewhere.db'} (--db)" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_missing_database_is_named_with_where_it_was_chosen(tmp_path: Path) -> None:
    default = kairos("users", "list", cwd=tmp_path)
    assert default.returncode == 2
    assert default.stderr == (
        f"error: no database at {tmp_path / 'kairos.db'} (the default); pass the one"
        " `kairos serve` uses with --db or KAIROS_DATABASE_URL\n"
    )
    by_env = kairos("users", "list", cwd=tmp_path, KAIROS_DATABASE_URL="sqlite:///e.db")
    assert f"no database at {tmp_path / 'e.db'} (KAIROS_DATABASE_URL)" in by_env.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_plain_path_is_a_sqlite_database_and_each_command_says_which(tmp_path: Path) -> None:
    added = kairos(
        "users", "add", "ann", "--password-stdin", "--db", "k.db", cwd=tmp_path, stdin=PASSWORD
    )
    assert added.returncode == 0, added.stderr
    assert added.stderr == f"New database: {tmp_path / 'k.db'}\n"

    by_url = kairos("users", "list", "--json", "--db", f"sqlite:///{tmp_path}/k.db")
    by_env = kairos("users", "list", "--json", KAIROS_DATABASE_URL=str(tmp_path / "k.db"))
    for listed in (by_url, by_env):
        assert listed.returncode == 0, listed.stderr
        assert [user["name"] for user in json.loads(listed.stdout)] == ["ann"]
        assert listed.stderr == f"Database: {tmp_path / 'k.db'}\n"
    upgraded = kairos("db", "upgrade", "--db", "k.db", cwd=tmp_path)
    assert upgraded.stdout == f"Database {tmp_path / 'k.db'} is up to date.\n"


def test_tables_never_cut_an_id(server: KairosProcess) -> None:
    long_id = "etl." + "a-rather-long-job-name." * 5 + "end"
    target = "http://127.0.0.1:9/" + "x" * 80
    put = on(server, "jobs", "put", long_id, "--every", "1h", "--target", target)
    assert put.returncode == 0, put.stderr
    assert on(server, "jobs", "run", long_id).returncode == 0

    for columns in ("40", "80", "300"):
        jobs = on(server, "jobs", "list", COLUMNS=columns)
        runs = on(server, "runs", "--job", long_id, COLUMNS=columns)
        assert long_id in jobs.stdout
        assert long_id in runs.stdout
    wide = on(server, "jobs", "list", COLUMNS="300").stdout
    assert max(len(line) for line in wide.splitlines()) <= 300
    unbounded = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = subprocess.run(
        [sys.executable, "-m", "kairos", "jobs", "list"],
        env=unbounded | {"KAIROS_URL": server.base_url, "KAIROS_TOKEN": ADMIN_TOKEN},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert target in piped.stdout  # written to a pipe, a row stays one line


def test_jobs_listed_or_shown_as_json_load_back_as_they_are(
    server: KairosProcess, tmp_path: Path
) -> None:
    for job_id in ("rt.a", "rt.b"):
        put = on(server, "jobs", "put", job_id, "--cron", "0 2 * * *", "--target", "http://h/")
        assert put.returncode == 0, put.stderr
    listed = tmp_path / "listed.json"
    listed.write_text(on(server, "jobs", "list", "--json", "--all").stdout)
    loaded = on(server, "jobs", "load", str(listed))
    assert loaded.returncode == 0, loaded.stderr
    assert "0 created" in loaded.stdout

    shown = tmp_path / "shown.json"
    shown.write_text(on(server, "jobs", "get", "rt.a").stdout)
    replaced = on(server, "jobs", "put", "rt.a", "--file", str(shown), "--description", "new")
    assert replaced.returncode == 0, replaced.stderr
    assert "replaced" in replaced.stdout
    assert json.loads(on(server, "jobs", "get", "rt.a").stdout)["description"] == "new"
    elsewhere = on(server, "jobs", "put", "rt.c", "--file", str(shown))
    assert elsewhere.returncode == 1
    assert "id: 'rt.a' is not the URL's job id 'rt.c'" in elsewhere.stderr
