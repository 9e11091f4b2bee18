"""The executor seam is chosen by the target's type: ``ExecutorRouter`` hands each call to the
executor of its kind, starts and closes them all, and ``executor_for`` covers every kind."""

from __future__ import annotations

import asyncio
from typing import get_args

from kairos.executors import ExecutorRouter, executor_for
from kairos.executors.base import Call, Outcome
from kairos.executors.http import HttpExecutor
from kairos.executors.python import PythonExecutor
from kairos.models import HttpTarget, TargetSpec
from kairos.settings import Settings


class Recording:
    """An executor that answers every call with its own name, and notes its life."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[str] = []

    async def start(self) -> None:
        self.events.append("start")

    async def close(self) -> None:
        self.events.append("close")

    async def execute(self, call: Call) -> Outcome:
        self.events.append(f"call {call.run_id}")
        return Outcome(True, detail=self.name)


def call(run_id: int) -> Call:
    return Call("j", run_id, 0, 1, HttpTarget.model_validate({"url": "http://127.0.0.1:9/"}))


def test_each_call_goes_to_the_executor_of_its_target_type() -> None:
    http, other = Recording("http"), Recording("other")
    router = ExecutorRouter({"http": http, "other": other})

    async def life() -> list[Outcome]:
        await router.start()
        try:
            return [await router.execute(call(1)), await router.execute(call(2))]
        finally:
            await router.close()

    assert [outcome.detail for outcome in asyncio.run(life())] == ["http", "http"]
    assert http.events == ["start", "call 1", "call 2", "close"]
    assert other.events == ["start", "close"]


def target_types() -> set[str]:
    """Every ``type`` a ``TargetSpec`` admits, read from its union."""
    member = get_args(TargetSpec)[0]
    members = get_args(member) or (member,)
    return {kind for model in members for kind in get_args(model.model_fields["type"].annotation)}


def test_the_server_has_an_executor_for_every_target_type() -> None:
    assert target_types() == {"http", "python"}
    router = executor_for(Settings(http_workers=0))
    assert set(router.executors) == target_types()
    assert isinstance(router.executors["http"], HttpExecutor)
    assert isinstance(router.executors["python"], PythonExecutor)
