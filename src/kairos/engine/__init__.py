"""The scheduling engine: the ``Scheduler`` facade over the dispatcher and the store."""

from kairos.engine.options import EngineOptions
from kairos.engine.scheduler import Scheduler

__all__ = ["EngineOptions", "Scheduler"]
