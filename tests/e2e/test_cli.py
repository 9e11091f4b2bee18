"""The ``kairos`` command against a real server, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.postgres import ADMIN_URL, require_postgres
from tests.support.server import ADMIN_TOKEN, KairosProcess, free_port, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KairosProcess]:
    db = tmp_path_factory.mktemp("cli") / "k.db"
    with KairosProcess(f"sqlite:///{db}") as process:
        yield process


def kairos(
    *args: str, server: KairosProcess | None = None, token: str = ADMIN_TOKEN
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if server is not None:
        env |= {"KAIROS_URL": server.base_url, "KAIROS_TOKEN": token}
    return subprocess.run(
        [sys.executable, "-m", "kairos", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_put_get_list_pause_resume_run_delete(server: KairosProcess) -> None:
    target = "http://127.0.0.1:9/hook"
    created = kairos(
        "jobs", "put", "nightly", "--cron", "0 2 * * *", "--target", target, server=server
    )
    assert created.returncode == 0, created.stderr
    assert "created" in created.stdout
    replaced = kairos(
        "jobs",
        "put",
        "nightly",
        "--every",
        "1h30m",
        "--target",
        target,
        "--tz",
        "Asia/Tokyo",
        server=server,
    )
    assert "replaced" in replaced.stdout

    job = json.loads(kairos("jobs", "get", "nightly", server=server).stdout)
    assert job["trigger"]["type"] == "interval"
    assert job["trigger"]["seconds"] == 5400
    assert job["timezone"] == "Asia/Tokyo"

    table = kairos("jobs", "list", server=server).stdout
    assert "nightly" in table
    assert "every" in table
    listed = json.loads(kairos("jobs", "list", "--json", server=server).stdout)
    # The server is the module's: other tests' jobs may be listed too, in any order of tests.
    assert "nightly" in [j["id"] for j in listed["items"]]

    assert "paused" in kairos("jobs", "pause", "nightly", server=server).stdout
    assert "scheduled" in kairos("jobs", "resume", "nightly", server=server).stdout

    run = json.loads(kairos("jobs", "run", "nightly", "--json", server=server).stdout)
    assert run["manual"] is True
    runs = json.loads(kairos("runs", "--job", "nightly", "--json", server=server).stdout)
    assert run["id"] in [r["id"] for r in runs["items"]]
    assert str(run["id"]) in kairos("runs", server=server).stdout

    assert kairos("jobs", "delete", "nightly", server=server).returncode == 0
    gone = kairos("jobs", "get", "nightly", server=server)
    assert gone.returncode == 1
    assert "not found" in gone.stderr


def test_bad_input_names_the_field(server: KairosProcess) -> None:
    bad = kairos("jobs", "put", "x", "--cron", "61 * * * *", "--target", "http://h/", server=server)
    assert bad.returncode == 1
    assert "trigger.expression" in bad.stderr
    no_target = kairos("jobs", "put", "x", "--cron", "0 * * * *", server=server)
    assert no_target.returncode == 2
    assert "--target" in no_target.stderr
    bad_every = kairos(
        "jobs", "put", "x", "--every", "soon", "--target", "http://h/", server=server
    )
    assert bad_every.returncode == 2
    assert "--every" in bad_every.stderr


def test_a_wrong_token_says_which_setting_to_fix(server: KairosProcess) -> None:
    result = kairos("jobs", "list", server=server, token="wrong")
    assert result.returncode == 1
    assert "KAIROS_TOKEN" in result.stderr


def test_an_unreachable_server_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-m", "kairos", "jobs", "list", "--url", url, "--token", "t"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert url in result.stderr


def test_preview_is_offline_and_in_the_zone() -> None:
    result = kairos("preview", "0 2 * * 0", "--tz", "Europe/Berlin", "--count", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    fires = [datetime.fromisoformat(line.split()[0]) for line in lines]
    berlin = ZoneInfo("Europe/Berlin")
    for fire in fires:
        local = fire.astimezone(berlin)
        assert (local.weekday(), local.hour, local.minute) == (6, 2, 0)
    now = datetime.now(UTC)
    assert now < fires[0] <= now + timedelta(days=7)
    assert fires[1] - fires[0] in {
        timedelta(days=7),
        timedelta(days=7, hours=1),
        timedelta(days=6, hours=23),
    }


def test_preview_rejects_bad_input() -> None:
    assert kairos("preview", "0 2 * *").returncode == 2
    bad_zone = kairos("preview", "0 2 * * *", "--tz", "Mars/Base")
    assert bad_zone.returncode == 2
    assert "Mars/Base" in bad_zone.stderr


def test_serve_refuses_a_bad_database_url() -> None:
    result = kairos("serve", "--db", "nonsense://x", "--port", str(free_port()))
    assert result.returncode == 2
    assert "nonsense" in result.stderr
    assert "Traceback" not in result.stderr


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line ``kairos serve`` printed when it refused to start."""
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize("damage", ["not a database", "corrupt"])
def test_serve_refuses_a_damaged_database_file_in_one_line(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "k.db"
    if damage == "corrupt":
        assert kairos("db", "upgrade", "--db", f"sqlite:///{path}").returncode == 0
        with path.open("r+b") as file:  # garbage over all but the first page
            file.seek(4096)
            file.write(os.urandom(path.stat().st_size - 4096))
    else:
        path.write_bytes(os.urandom(20_000))
    line = refused(kairos("serve", "--db", f"sqlite:///{path}", "--port", str(free_port())))
    assert str(path) in line
    assert "is corrupt, or not a SQLite database" in line
    assert "restore it from a backup, or move it away" in line


def test_serve_refuses_a_database_file_it_cannot_make_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    under_a_file = tmp_path / "a-file" / "k.db"
    line = refused(kairos("serve", "--db", f"sqlite:///{under_a_file}", "--port", "0"))
    assert line == (
        f"error: cannot create the directory {under_a_file.parent} of the database k.db (File"
        " exists); create it, or choose another place for the database"
    )
    line = refused(kairos("serve", "--db", f"sqlite:///{tmp_path}", "--port", "0"))
    assert line == (
        f"error: cannot open the database {tmp_path} (unable to open database file); check"
        " that this process may read and write it and its directory"
    )


def test_serve_refuses_an_unreachable_postgresql_server_in_one_line() -> None:
    url = f"postgresql://kairos:s3cret@127.0.0.1:{free_port()}/kairos"
    line = refused(kairos("serve", "--db", url, "--port", str(free_port())))
    assert url.replace("s3cret", "***") in line
    assert "Connection refused" in line
    assert "check that PostgreSQL runs there" in line


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        # The test server trusts every local user: an unknown user is its sign-in refusal.
        ({"username": "no_such_user", "password": "s3cret"}, 'role "no_such_user" does not exist'),
        ({"database": "no_such_database"}, 'database "no_such_database" does not exist'),
    ],
)
def test_serve_refuses_a_postgresql_database_it_cannot_use_in_one_line(
    change: dict[str, str], reason: str
) -> None:
    require_postgres()
    url = make_url(ADMIN_URL).set(**change).render_as_string(hide_password=False)
    line = refused(kairos("serve", "--db", url, "--port", str(free_port())))
    assert make_url(url).render_as_string() in line
    assert "s3cret" not in line
    assert reason in line


def test_first_start_prints_a_working_token_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/fresh.db"
    log = tmp_path / "serve.log"
    first = KairosProcess(db, token=None, log_path=log).start()
    try:
        wait_until(lambda: "Admin token" in log.read_text(), 10, what="the banner")
        token = log.read_text().split("stored hashed):")[1].split()[0]
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{first.base_url}/jobs", headers=headers).status_code == 200
    finally:
        first.stop()
    second_log = tmp_path / "second.log"
    second = KairosProcess(db, token=None, log_path=second_log).start()
    try:
        wait_until(lambda: "Node" in second_log.read_text(), 10, what="the banner")
        assert "Admin token" not in second_log.read_text()
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{second.base_url}/jobs", headers=headers).status_code == 200
    finally:
        second.stop()


def test_load_creates_and_replaces_many_jobs_from_a_file(
    server: KairosProcess, tmp_path: Path
) -> None:
    job = {"trigger": {"type": "cron", "expression": "0 4 * * *"}, "target": {"url": "http://h/"}}
    listed = tmp_path / "jobs.json"
    listed.write_text(json.dumps([{"id": f"load-{i}"} | job for i in range(3)]))
    first = kairos("jobs", "load", str(listed), server=server)
    assert first.returncode == 0, first.stderr
    assert "3 jobs loaded: 3 created, 0 replaced" in first.stdout
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"jobs": [{"id": "load-0"} | job, {"id": "load-9"} | job]}))
    again = kairos("jobs", "load", str(wrapped), server=server)
    assert "2 jobs loaded: 1 created, 1 replaced" in again.stdout
    got = kairos("jobs", "get", "load-9", server=server)
    assert json.loads(got.stdout)["trigger"]["expression"] == "0 4 * * *"


def test_load_refuses_a_bad_file_and_names_a_bad_job(server: KairosProcess, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    assert "not valid JSON" in kairos("jobs", "load", str(broken), server=server).stderr
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    assert kairos("jobs", "load", str(empty), server=server).returncode == 2
    bad = tmp_path / "bad.json"
    jobs = [
        {
            "id": "ok",
            "trigger": {"type": "cron", "expression": "0 4 * * *"},
            "target": {"url": "http://h/"},
        },
        {
            "id": "bad",
            "trigger": {"type": "cron", "expression": "0 25 * * *"},
            "target": {"url": "http://h/"},
        },
    ]
    bad.write_text(json.dumps(jobs))
    refused = kairos("jobs", "load", str(bad), server=server)
    assert refused.returncode == 1
    assert "jobs.1.trigger.expression" in refused.stderr
    assert kairos("jobs", "get", "ok", server=server).returncode == 1  # nothing was written
    missing = kairos("jobs", "load", str(tmp_path / "nope.json"), server=server)
    assert (missing.returncode, "cannot read" in missing.stderr) == (2, True)
