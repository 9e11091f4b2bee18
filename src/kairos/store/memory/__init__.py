"""The memory store (``memory://``): the store without a database, for tests and throw-away
scripts. One process only; nothing is kept once the process ends."""

from kairos.store.memory.store import MemoryStore

__all__ = ["MemoryStore"]
