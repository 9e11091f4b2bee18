"""``ExecutorRouter``: one ``Executor`` over one executor per kind of target."""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import Any

from kairos.executors.base import Call, Executor, Outcome

__all__ = ["ExecutorRouter"]


class ExecutorRouter:
    """Hands each call to the executor of its target's ``type``. ``executors`` must cover
    every type a ``TargetSpec`` can have (the spec's validation admits no other)."""

    def __init__(self, executors: Mapping[str, Executor]) -> None:
        self.executors: Mapping[str, Executor] = dict(executors)
        """Target type -> the executor of its calls."""

    async def start(self) -> None:
        # One that fails leaves the others to ``close``, which closes every one of them.
        for executor in self.executors.values():
            await executor.start()

    async def close(self) -> None:
        for executor in self.executors.values():
            await executor.close()

    def execute(self, call: Call) -> Coroutine[Any, Any, Outcome]:
        # Not a coroutine of its own: the chosen executor's is awaited as it is, so routing
        # costs a call one dict lookup and no extra coroutine.
        return self.executors[call.target.type].execute(call)
