"""A process that has imported Kairos and forks ``kairos`` commands from itself (see
``tests.support.server.Forker``, which drives it).

A forked command is the real command in a process of its own, without the seconds a new
interpreter takes to import Kairos; the commands of one request wait for a shared pipe to close
and so begin at the same instant. One JSON request per line on stdin, one answer per line on
stdout:

- ``{"run": [{"args": [...], "env": {...}, "log": path | null, "stdin": text}, ...]}``
  answers ``{"pids": [...]}``;
- ``{"poll": pid}`` answers ``{"returncode": int | null}`` (negative: killed by that signal).

At the end of its input it kills and reaps whatever it started that still runs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import traceback
from typing import Any

import uvicorn  # noqa: F401  (imported here once, as everything below, for every child)

import kairos.api
import kairos.api.server
import kairos.cli
import kairos.executors
import kairos.store.postgres
import kairos.store.sqlite


def main() -> None:
    children: set[int] = set()
    for line in sys.stdin:
        request = json.loads(line)
        if "run" in request:
            pids = _run_together(request["run"])
            children.update(pids)
            answer: dict[str, Any] = {"pids": pids}
        else:
            answer = {"returncode": _poll(request["poll"])}
            if answer["returncode"] is not None:
                children.discard(request["poll"])
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _run_together(commands: list[dict[str, Any]]) -> list[int]:
    # Forking copies only the calling thread: with another running, a child could inherit a
    # lock held for good.
    assert threading.active_count() == 1, threading.enumerate()
    go_read, go_write = os.pipe()
    pids = []
    for command in commands:
        stdin_read, stdin_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(go_write)
            os.close(stdin_write)
            _child(command, go_read, stdin_read)
        os.close(stdin_read)
        os.write(stdin_write, command["stdin"].encode())  # short: fits in the pipe
        os.close(stdin_write)
        pids.append(pid)
    os.close(go_read)
    os.close(go_write)  # the children's read of the pipe ends: they all go
    return pids


def _child(command: dict[str, Any], go: int, stdin: int) -> None:
    code = 1
    try:
        os.dup2(stdin, 0)
        log = command["log"] or os.devnull
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        os.environ.clear()
        os.environ.update(command["env"])
        sys.argv = ["kairos", *command["args"]]
        os.read(go, 1)
        kairos.cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _poll(pid: int) -> int | None:
    done, status = os.waitpid(pid, os.WNOHANG)
    return None if done == 0 else os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    main()
