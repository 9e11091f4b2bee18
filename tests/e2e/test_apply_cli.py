"""Jobs as code with the ``kairos`` command against real servers: export, apply on another
server, export again; the diff, the dry run and prune; files with problems refused whole."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kairos.client import Client
from tests.support.server import ADMIN_TOKEN, KairosProcess

pytestmark = pytest.mark.e2e

ENV: dict[str, str | None] = {"KAIROS_TEST_HOOK_TOKEN": "hook-token-value"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KairosProcess, ...]]:
    base = tmp_path_factory.mktemp("apply")
    with (
        KairosProcess(f"sqlite:///{base / 'one.db'}", env=ENV) as one,
        KairosProcess(f"sqlite:///{base / 'two.db'}", env=ENV) as two,
    ):
        yield one, two


def kairos(server: KairosProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"KAIROS_URL": server.base_url, "KAIROS_TOKEN": ADMIN_TOKEN}
    return subprocess.run(
        [sys.executable, "-m", "kairos", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def job(**extra: Any) -> dict[str, Any]:
    trigger = {"type": "cron", "expression": "0 2 * * *"}
    return {"trigger": trigger, "target": {"url": "http://127.0.0.1:9/hook"}} | extra


def ids(server: KairosProcess, tag: str) -> list[str]:
    with Client(server.base_url, ADMIN_TOKEN) as client:
        return [j.id for j in client.list_jobs(tag=tag)]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_export_apply_elsewhere_and_export_again_give_the_same_file(
    servers: tuple[KairosProcess, ...], tmp_path: Path, suffix: str
) -> None:
    one, two = servers
    tag = f"rt{suffix[1:]}"
    with Client(one.base_url, ADMIN_TOKEN) as client:
        headers = {"Authorization": "Bearer ${env:KAIROS_TEST_HOOK_TOKEN}"}
        client.put_job(
            f"{tag}.b", job(tags=[tag], target={"url": "http://h.test/", "headers": headers})
        )
        client.put_job(
            f"{tag}.a",
            job(
                tags=[tag, "other"],
                trigger={"type": "interval", "minutes": 90},
                timezone="Europe/Paris",
                description="Nächtlich: ünïcode",
                paused=True,
                retry={"max_attempts": 3},
            ),
        )
        client.put_job("untagged.rt", job())
    first, second = tmp_path / f"first{suffix}", tmp_path / f"second{suffix}"
    exported = kairos(one, "jobs", "export", "--tag", tag, "-o", str(first))
    assert exported.returncode == 0, exported.stderr
    assert "${env:KAIROS_TEST_HOOK_TOKEN}" in first.read_text()

    applied = kairos(two, "apply", "-f", str(first))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [
        f"+ {tag}.a created",
        f"+ {tag}.b created",
        "Applied: 2 created, 0 changed, 0 deleted, 0 unchanged.",
    ]
    assert kairos(two, "jobs", "export", "--tag", tag, "-o", str(second)).returncode == 0
    assert second.read_text() == first.read_text()
    # Exported once more from the first server, to standard output: the same text again.
    assert kairos(one, "jobs", "export", "--tag", tag, "--format", suffix[1:]).stdout == (
        first.read_text()
    )
    again = kairos(two, "apply", "-f", str(second))
    assert again.stdout.splitlines() == ["Applied: 0 created, 0 changed, 0 deleted, 2 unchanged."]


def test_the_diff_the_dry_run_and_prune(servers: tuple[KairosProcess, ...], tmp_path: Path) -> None:
    one, _ = servers
    with Client(one.base_url, ADMIN_TOKEN) as client:
        for name in ("keep", "change", "old"):
            client.put_job(f"team.{name}", job(tags=["team"]))
        client.put_job("elsewhere", job(tags=["not-team"]))
        before = client.get_job("team.change")
    files = tmp_path / "jobs"
    files.mkdir()
    (files / "a.yaml").write_text(
        "- id: team.keep\n"
        "  trigger: {type: cron, expression: '0 2 * * *'}\n"
        "  target: {url: 'http://127.0.0.1:9/hook'}\n"
        "  tags: [team]\n"
    )
    (files / "b.json").write_text(
        '{"jobs": [{"id": "team.change", "trigger": {"type": "cron", "expression": "0 3 * * *"},'
        ' "target": {"url": "http://127.0.0.1:9/hook"}, "tags": ["team"], "max_instances": 2},'
        ' {"id": "team.new", "trigger": {"type": "interval", "hours": 1},'
        ' "target": {"url": "http://127.0.0.1:9/hook"}, "tags": ["team"]}]}'
    )
    args = ("apply", "-f", str(files), "--prune", "--selector", "tag=team")
    plan = kairos(one, *args, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines() == [
        "+ team.new (create)",
        "~ team.change (change): max_instances, trigger",
        "- team.old (delete)",
        "Dry run: 1 to create, 1 to change, 1 to delete, 1 unchanged; nothing written.",
    ]
    assert ids(one, "team") == ["team.change", "team.keep", "team.old"]

    applied = kairos(one, *args)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[-1] == (
        "Applied: 1 created, 1 changed, 1 deleted, 1 unchanged."
    )
    assert ids(one, "team") == ["team.change", "team.keep", "team.new"]
    with Client(one.base_url, ADMIN_TOKEN) as client:
        assert client.get_job("team.change").max_instances == 2
        assert client.get_job("team.keep").updated_at < client.get_job("team.new").created_at
        assert before.updated_at < client.get_job("team.change").updated_at
        assert client.get_job("elsewhere").tags == ["not-team"]  # not the selector's
        [change] = list(client.list_audit(target="jobs", page_size=1))
    assert change.action == "jobs.apply"

    no_selector = kairos(one, "apply", "-f", str(files), "--prune")
    assert (no_selector.returncode, "--selector" in no_selector.stderr) == (2, True)


def test_files_with_problems_are_refused_whole(
    servers: tuple[KairosProcess, ...], tmp_path: Path
) -> None:
    one, _ = servers
    with Client(one.base_url, ADMIN_TOKEN) as client:
        client.put_job("bad.existing", job(tags=["bad"]))
        before = [j.model_dump() for j in client.list_jobs()]
    good = (
        "  trigger: {type: cron, expression: '0 4 * * *'}\n  target: {url: 'http://127.0.0.1:9/'}\n"
    )
    (tmp_path / "a.yaml").write_text(
        f"- id: bad.new\n{good}- id: bad.existing\n{good}  colour: 1\n"
    )
    (tmp_path / "b.yml").write_text(f"- id: bad.new\n{good}")
    (tmp_path / "c.json").write_text("{not json")
    refused = kairos(one, "apply", "-f", str(tmp_path))
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"error: {tmp_path / 'a.yaml'}: job 'bad.existing': colour: unknown field",
        f"error: {tmp_path / 'c.json'}: not valid JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        f"error: {tmp_path / 'b.yml'}: job 'bad.new': id: duplicate id, also in"
        f" {tmp_path / 'a.yaml'} (job #1)",
        "error: nothing applied: 3 problems",
    ]

    # A reference the server cannot resolve: found by the server, named by file and job.
    (tmp_path / "b.yml").unlink()
    (tmp_path / "c.json").unlink()
    missing = "${env:KAIROS_TEST_NOT_SET}"
    (tmp_path / "a.yaml").write_text(
        f"- id: bad.new\n{good}- id: bad.existing\n"
        "  trigger: {type: cron, expression: '0 4 * * *'}\n"
        "  target: {url: 'http://127.0.0.1:9/', headers: {X-Key: '" + missing + "'}}\n"
    )
    unresolved = kairos(one, "apply", "-f", str(tmp_path / "a.yaml"))
    assert unresolved.returncode == 2, unresolved.stdout
    [problem, summary] = unresolved.stderr.splitlines()
    assert problem.startswith(f"error: {tmp_path / 'a.yaml'}: job 'bad.existing': target.headers")
    assert "KAIROS_TEST_NOT_SET" in problem
    assert summary == "error: nothing applied: 1 problem"
    with Client(one.base_url, ADMIN_TOKEN) as client:
        assert [j.model_dump() for j in client.list_jobs()] == before
