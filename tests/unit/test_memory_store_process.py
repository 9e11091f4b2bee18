"""A memory store belongs to one process: a forked copy of it, or a worker of a server that runs
several, is refused with a message naming what to use instead; a process of its own (a test
runner's worker, a script's) opens one of its own."""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kairos.store import store_for_url

ROOT = Path(__file__).resolve().parents[2]

_FORK = textwrap.dedent(
    """
    import asyncio, os
    from kairos.errors import StoreUnavailable
    from kairos.store import store_for_url

    store = store_for_url("memory://")
    asyncio.run(store.open())
    asyncio.run(store.set_meta_if_absent("owner", "parent"))
    pid = os.fork()
    if pid == 0:
        try:
            asyncio.run(store.set_meta_if_absent("owner", "child"))
        except StoreUnavailable as exc:
            print("child:", exc.detail, flush=True)
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    print("child exit:", os.waitstatus_to_exitcode(status))
    print("parent:", asyncio.run(store.get_meta("owner")))
    """
)


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_a_forked_copy_of_the_process_is_refused_and_the_original_goes_on() -> None:
    done = _python(_FORK)
    assert done.returncode == 0, done.stderr
    child, exit_line, parent = done.stdout.splitlines()
    assert child.startswith("child: memory:// keeps every job and run in the memory of one")
    assert "made by fork" in child
    assert "sqlite:///path.db" in child
    assert "postgresql://" in child
    assert exit_line == "child exit: 0"
    assert parent == "parent: parent"


def _open_and_write(value: str) -> str | None:
    async def run() -> str | None:
        store = store_for_url("memory://")
        await store.open()
        await store.set_meta_if_absent("owner", value)
        return await store.get_meta("owner")

    return asyncio.run(run())


def test_a_process_of_its_own_opens_a_memory_store_of_its_own() -> None:
    # Started by multiprocessing, as test runners and scripts start theirs: not refused.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_open_and_write, ("worker",)) == "worker"
    assert _open_and_write("here") == "here"


def test_a_worker_of_uvicorn_with_several_workers_is_refused_at_start() -> None:
    server = subprocess.run(
        [
            *(sys.executable, "-m", "uvicorn", "tests.support.memory_app:app", "--factory"),
            *("--workers", "2", "--host", "127.0.0.1", "--port", "0"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Each worker fails its start, and the server stops.
    assert "failed to start, stopping the parent process" in server.stderr, server.stderr
    assert (
        "memory:// keeps every job and run in the memory of one process, and uvicorn runs 2"
        " worker processes here" in server.stderr
    ), server.stderr
    assert "run a single worker, or use postgresql://..." in server.stderr


def test_memory_urls_name_the_memory_store_and_nothing_else() -> None:
    assert type(store_for_url("memory://")).__name__ == "MemoryStore"
    for wrong in ("memory:", "memory:///", "memory://jobs"):
        with pytest.raises(ValueError, match="the memory store takes no path or options"):
            store_for_url(wrong)
