"""The engine's background tasks: each runs until the exit stack that started it closes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import Any

__all__ = ["cancelled", "in_background"]


def in_background(
    stack: AsyncExitStack, work: Coroutine[Any, Any, None], *, name: str
) -> asyncio.Task[None]:
    """Run ``work`` as a task until ``stack`` closes, which cancels it and waits for its end."""
    task = asyncio.create_task(work, name=name)
    stack.push_async_callback(cancelled, task)
    return task


async def cancelled(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if there is one) and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
