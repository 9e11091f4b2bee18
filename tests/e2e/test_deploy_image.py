"""The image's recipe, run outside a container (no container runtime is needed): the
Dockerfile's build stage builds the wheels from a copy of what it COPYs, its runtime stage's
install command installs them with no index into a fresh virtual environment, its CMD serves
with its ENV, and its HEALTHCHECK command passes against that server and fails once it stops.

What does not run here: the base image, the user's creation, the VOLUME and the port mapping."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest

from tests.support.deploy import DEPLOY, REPO, Stage, read_dockerfile
from tests.support.server import ADMIN_TOKEN, free_port, wait_until

pytestmark = pytest.mark.e2e

WHEELS = "/wheels"
"""Where the build stage leaves the wheels and the runtime stage reads them."""
SYSTEM_COMMANDS = ("groupadd ", "useradd ", "install --directory")
"""The runtime stage's commands that change the system, which run only in the image."""


def run_stage_command(command: str, cwd: Path, env: dict[str, str], wheels: Path) -> None:
    assert WHEELS in command, command
    shell = command.replace(WHEELS, str(wheels))
    done = subprocess.run(
        ["sh", "-c", shell], cwd=cwd, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, f"{shell}\n{done.stdout}\n{done.stderr}"


def stage_env(stage: Stage, bin_dir: Path) -> dict[str, str]:
    # The image keeps no pip cache; here the cache only saves downloads.
    env = {k: v for k, v in stage.env().items() if k != "PIP_NO_CACHE_DIR"}
    return {**os.environ, **env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def build_wheels(build: Stage, tmp_path: Path) -> Path:
    """The build stage: its COPY sources, less what the Dockerfile's ignore file leaves out, in
    a context of their own, then its RUN."""
    workdir = tmp_path / "src"
    workdir.mkdir()
    ignored = shutil.ignore_patterns(*ignored_names(DEPLOY / "Dockerfile.dockerignore"))
    for copy in build.all("COPY"):
        *sources, destination = copy.arguments.split()
        for source in sources:
            to = workdir / destination
            if destination.endswith("/"):
                to /= Path(source).name
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, to, ignore=ignored)
            else:
                shutil.copy(REPO / source, to)
    wheels = tmp_path / "wheels"
    (command,) = build.all("RUN")
    env = stage_env(build, Path(sys.executable).parent)
    run_stage_command(command.arguments, workdir, env, wheels)
    return wheels


def ignored_names(path: Path) -> list[str]:
    """The ``**/name`` patterns of a ``.dockerignore``, as names to leave out at any depth."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line.removeprefix("**/") for line in lines if line.startswith("**/")]


def install_runtime(runtime: Stage, wheels: Path, tmp_path: Path) -> Path:
    """The runtime stage's install command in a fresh virtual environment."""
    prefix = tmp_path / "runtime"
    venv.create(prefix, with_pip=True)
    commands = [run.arguments for run in runtime.all("RUN")]
    installs = [c for c in commands if not c.startswith(SYSTEM_COMMANDS)]
    assert len(installs) == 1, commands
    run_stage_command(installs[0], tmp_path, stage_env(runtime, prefix / "bin"), wheels)
    return prefix


def healthy(command: list[str], env: dict[str, str]) -> bool:
    return subprocess.run(command, env=env, capture_output=True, timeout=30).returncode == 0


def test_the_images_commands_install_serve_and_pass_the_healthcheck(tmp_path: Path) -> None:
    _, (build, runtime) = read_dockerfile(DEPLOY / "Dockerfile")
    prefix = install_runtime(runtime, build_wheels(build, tmp_path), tmp_path)
    where = subprocess.run(
        [prefix / "bin" / "python", "-c", "import kairos; print(kairos.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert Path(where.stdout.strip()).is_relative_to(prefix), "kairos comes from the wheel"

    image_env = runtime.env()
    data_dir = runtime.all("WORKDIR")[-1].arguments
    local_data = tmp_path / data_dir.strip("/")
    local_data.mkdir(parents=True)
    port = free_port()
    env = {
        **image_env,
        "PATH": f"{prefix / 'bin'}{os.pathsep}/usr/bin:/bin",
        "KAIROS_HOST": "127.0.0.1",  # the image binds 0.0.0.0; a shared machine need not
        "KAIROS_PORT": str(port),
        "KAIROS_DATABASE_URL": image_env["KAIROS_DATABASE_URL"].replace(data_dir, str(local_data)),
        "KAIROS_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    command = runtime.exec_form("CMD")
    check = runtime.exec_form("HEALTHCHECK")
    assert not healthy(check, env), "the healthcheck passes with nothing listening"
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [shutil.which(command[0], path=env["PATH"]) or command[0], *command[1:]],
            env=env,
            cwd=local_data,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: server.poll() is not None or healthy(check, env), 30, interval=0.2)
        assert server.poll() is None, log.read_text()
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert ready.status_code == 200
        assert (local_data / "kairos.db").exists()
    finally:
        server.send_signal(signal.SIGTERM)
        returncode = server.wait(30)
    # uvicorn ends a graceful shutdown by raising the signal again, as a container runtime expects.
    assert returncode == -signal.SIGTERM, log.read_text()
    assert "Application shutdown complete" in log.read_text()
    assert not healthy(check, env)
