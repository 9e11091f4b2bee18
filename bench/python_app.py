"""A small host app embedding Kairos, for ``uvicorn bench.python_app:app --workers N``.

Its one task, ``noop``, appends a line per call (job id, the fire's nominal time and when it was
called, in epoch microseconds, tab-separated) to a file of its worker process's own in
``$BENCH_FIRES_DIR``. The database comes from ``KAIROS_DATABASE_URL``; the API is mounted under
``/scheduler``.
"""

from __future__ import annotations

import os
import time

from fastapi import FastAPI

from kairos import Kairos
from kairos.tasks import RunContext

__all__ = ["app", "kairos"]

kairos = Kairos()
_fires: dict[int, int] = {}
"""The file descriptor of this process's record, by process id (opened at the first call)."""


@kairos.task()
async def noop(ctx: RunContext) -> None:
    called_us = time.time_ns() // 1000
    scheduled_us = int(ctx.scheduled_for.timestamp() * 1e6)
    # One unbuffered append per call: the benchmark counts the lines while the burst runs.
    os.write(_record(), f"{ctx.job_id}\t{scheduled_us}\t{called_us}\n".encode())


def _record() -> int:
    pid = os.getpid()
    if pid not in _fires:
        path = os.path.join(os.environ["BENCH_FIRES_DIR"], f"worker-{pid}.tsv")
        _fires[pid] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    return _fires[pid]


app = FastAPI(lifespan=kairos.lifespan)
app.include_router(kairos.router(), prefix="/scheduler")
