"""The design note's application with Kairos: ``POST /tasks`` creates or replaces a job that
calls one of this app's own functions, ``DELETE /tasks/{task_id}`` removes it.

Run it with as many worker processes as you like; each is one Kairos node on the same database
and every fire runs once::

    uvicorn examples.fastapi_app.app:app --workers 4

``KAIROS_DATABASE_URL`` says where the jobs live (default ``sqlite:///kairos.db``),
``APP_DATABASE_URL`` where this app keeps its own table (default ``sqlite:///app.db``); either
may be ``postgresql://...``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from typing import Any, Self

import psycopg
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field, ValidationError, model_validator

from kairos import Kairos, RunContext
from kairos.errors import InvalidField, JobNotFound

APP_DATABASE_URL = os.environ.get("APP_DATABASE_URL", "sqlite:///app.db")

kairos = Kairos(os.environ.get("KAIROS_DATABASE_URL", "sqlite:///kairos.db"))
log = logging.getLogger("app")


# The app's own database ---------------------------------------------------------------------


def write(sql: str, params: tuple[Any, ...] = ()) -> None:
    """Run one statement (``?`` placeholders) in a transaction of its own."""
    if APP_DATABASE_URL.startswith("sqlite:///"):
        path = APP_DATABASE_URL.removeprefix("sqlite:///")
        # Several workers write this file: wait for SQLite's write lock rather than fail.
        with closing(sqlite3.connect(path, timeout=30)) as conn, conn:
            conn.execute(sql, params)
    else:
        with psycopg.connect(APP_DATABASE_URL) as pg:
            if sql.startswith("CREATE"):
                # Workers start at the same instant: they would race to create the table.
                pg.execute("SELECT pg_advisory_xact_lock(hashtext('app.ticks'))")
            pg.execute(sql.replace("?", "%s"), params)


def create_tables() -> None:
    # No UNIQUE constraint on (job_id, scheduled_for): a fire that ran twice would show.
    write(
        "CREATE TABLE IF NOT EXISTS ticks (job_id TEXT NOT NULL, scheduled_for TEXT NOT NULL,"
        " attempt INTEGER NOT NULL, pid INTEGER NOT NULL, note TEXT NOT NULL)"
    )


# The app's tasks: plain functions, called by whichever worker claims the fire ----------------


@kairos.task()
def record_tick(ctx: RunContext, note: str = "") -> None:
    """Write one row per fire. A plain function runs in a thread: it may block."""
    write(
        "INSERT INTO ticks (job_id, scheduled_for, attempt, pid, note) VALUES (?, ?, ?, ?, ?)",
        (ctx.job_id, ctx.scheduled_for.isoformat(), ctx.attempt, os.getpid(), note),
    )


@kairos.task()
async def say(message: str, ctx: RunContext) -> None:
    """A coroutine runs on the event loop: it must not block."""
    log.warning("%s (job %s, due %s)", message, ctx.job_id, ctx.scheduled_for)


# The app's API --------------------------------------------------------------------------------


class TaskIn(BaseModel):
    task_id: str
    crontab: str | None = Field(None, examples=["0 2 * * *"])
    every_seconds: float | None = Field(None, gt=0)
    task: str = Field("record_tick", description="one of the app's tasks")
    params: dict[str, Any] = Field({}, description="the task's keyword arguments")

    @model_validator(mode="after")
    def one_schedule(self) -> Self:
        if (self.crontab is None) == (self.every_seconds is None):
            raise ValueError("give one of crontab and every_seconds")
        return self

    def job_spec(self) -> dict[str, Any]:
        trigger = (
            {"type": "cron", "expression": self.crontab}
            if self.crontab is not None
            else {"type": "interval", "seconds": self.every_seconds}
        )
        return {
            "trigger": trigger,
            "target": {"type": "python", "task": self.task, "kwargs": self.params},
            # Every fire counts: fires missed while no worker ran (a restart) run late, one each.
            "coalesce": False,
            "misfire_grace_time": 300,
        }


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    create_tables()
    async with kairos.lifespan(app):
        yield


app = FastAPI(lifespan=lifespan)
app.include_router(kairos.router(), prefix="/scheduler")
app.mount("/scheduler/ui", kairos.ui())


@app.post("/tasks")
async def put_task(body: TaskIn) -> dict[str, Any]:
    """Create the task's job, or replace it completely: posting the same body twice is
    harmless."""
    try:
        job = await kairos.put_job(body.task_id, body.job_spec())
    except ValidationError as exc:
        raise HTTPException(422, [_app_field(e["loc"], e["msg"]) for e in exc.errors()]) from None
    except InvalidField as exc:
        loc = ("task_id",) if exc.loc == ("job_id",) else exc.loc
        raise HTTPException(422, [_app_field(loc, exc.message)]) from None
    return {"task_id": job.id, "next_run_time": job.next_run_time}


@app.delete("/tasks/{task_id}")
async def delete_task(task_id: str) -> dict[str, str]:
    try:
        await kairos.delete(task_id)
    except JobNotFound:
        raise HTTPException(404, "Task not found") from None
    return {"status": "deleted"}


@app.get("/tasks")
async def list_tasks(cursor: str | None = None) -> dict[str, Any]:
    try:
        page = await kairos.list_jobs(cursor=cursor)
    except InvalidField as exc:  # a cursor this route did not hand out
        raise HTTPException(422, exc.body()) from None
    items = [{"task_id": job.id, "next_run_time": job.next_run_time} for job in page.items]
    return {"items": items, "next_cursor": page.next_cursor}


def _app_field(loc: tuple[str | int, ...], message: str) -> dict[str, Any]:
    """A Kairos field (``target.kwargs.n``) as the field of this app's body (``params.n``)."""
    head, *rest = loc or ("",)
    if head == "trigger":
        head = "crontab" if rest and rest[-1] == "expression" else "every_seconds"
        rest = []
    elif head == "target" and rest:
        head, *rest = rest
        head = "params" if head == "kwargs" else head
    return {"loc": ["body", head, *rest], "msg": message}
