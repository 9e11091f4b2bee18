"""Kairos: a self-hosted, API-driven job scheduler.

``from kairos import Kairos`` embeds it in another program (see ``kairos.library``); importing
the package alone stays light, for the ``kairos`` command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Kairos", "RunContext", "__version__"]

if TYPE_CHECKING:
    from kairos.library import Kairos
    from kairos.tasks import RunContext


def __getattr__(name: str) -> Any:
    if name == "Kairos":
        from kairos.library import Kairos

        return Kairos
    if name == "RunContext":
        from kairos.tasks import RunContext

        return RunContext
    raise AttributeError(f"module 'kairos' has no attribute {name!r}")
