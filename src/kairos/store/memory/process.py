"""A memory store belongs to one process: ``ProcessBinding`` refuses it to any other, and to the
worker processes of a server that runs several.

Two processes that each kept jobs in memory would each fire their own copies of them, and a
change made through one would never reach the other: rather than let a deployment diverge so,
the store says at once what to use instead.
"""

from __future__ import annotations

import os
import sys
from types import FrameType

from kairos.errors import StoreUnavailable

__all__ = ["ProcessBinding", "server_workers"]

_ONE_PROCESS = "memory:// keeps every job and run in the memory of one process"
_INSTEAD = (
    "use sqlite:///path.db to keep them in a file, or postgresql://... to share them between"
    " processes"
)


class ProcessBinding:
    """The process a memory store belongs to: the one that built it, or, if another process
    opens it first (a server that builds its app before forking its worker), that one."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._opened = False

    def check(self) -> None:
        """Raise ``StoreUnavailable`` in any process but the store's own (a fork of it)."""
        pid = os.getpid()
        if pid != self._pid:
            raise StoreUnavailable(
                f"{_ONE_PROCESS} (process {self._pid}); this process ({pid}) is a copy of it"
                f" made by fork, and what either changed would never reach the other: {_INSTEAD}"
            )

    def open(self) -> None:
        """Bind the store to this process as it opens; raise ``StoreUnavailable`` in a copy of
        the process that opened it, or in a worker of a server that runs several."""
        if not self._opened:
            self._pid = os.getpid()
        self.check()
        found = server_workers()
        if found is not None:
            server, workers = found
            raise StoreUnavailable(
                f"{_ONE_PROCESS}, and {server} runs {workers} worker processes here, each of"
                f" which would have jobs of its own: run a single worker, or use postgresql://...,"
                " which several processes share"
            )
        self._opened = True


def server_workers() -> tuple[str, int] | None:
    """The server and its number of worker processes, if this code runs in a worker of a server
    that runs more than one: a ``uvicorn --workers N`` worker (started in
    ``uvicorn._subprocess.subprocess_started`` with a config of ``workers`` > 1 and no reload)
    or a ``gunicorn -w N`` worker (forked in ``gunicorn.arbiter.Arbiter.spawn_worker`` by an
    arbiter with ``num_workers`` > 1). Both keep that frame on the worker's main thread's stack
    for the worker's whole life, so it is found from any code the worker's event loop runs."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        found = _workers_started_by(frame)
        if found is not None:
            return found if found[1] > 1 else None
        frame = frame.f_back
    return None


def _workers_started_by(frame: FrameType) -> tuple[str, int] | None:
    module, function = frame.f_globals.get("__name__"), frame.f_code.co_name
    if module == "uvicorn._subprocess" and function == "subprocess_started":
        config = frame.f_locals.get("config")
        if getattr(config, "should_reload", False):
            return "uvicorn", 1  # --reload serves from one worker, restarted on changes
        return "uvicorn", _count(getattr(config, "workers", None))
    if module == "gunicorn.arbiter" and function == "spawn_worker":
        return "gunicorn", _count(getattr(frame.f_locals.get("self"), "num_workers", None))
    return None


def _count(workers: object) -> int:
    return workers if isinstance(workers, int) else 1
