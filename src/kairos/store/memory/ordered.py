"""``OrderedKeys``: a sorted set of keys that stays cheap to change at a million keys and more.

A plain sorted list pays a move of every later key for each insert or delete (megabytes at a
million keys); a tree costs an object per key. Keys are kept instead in sorted blocks of a few
hundred, found by the largest key of each: a change costs a binary search and a move within one
block, and reading in order from any key costs a search and then the keys read.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["OrderedKeys"]

# Blocks split beyond twice this; a few hundred keeps both searches and moves short.
_BLOCK = 512


class _Comparable(Protocol):
    def __lt__(self, other: Any, /) -> bool: ...


K = TypeVar("K", bound=_Comparable)


class OrderedKeys(Generic[K]):
    """Distinct keys in ascending order. Iterators read the keys as they are when read: do not
    change the keys while iterating (collect first)."""

    __slots__ = ("_blocks", "_len", "_maxes")

    def __init__(self) -> None:
        self._blocks: list[list[K]] = []
        self._maxes: list[K] = []
        """The last (largest) key of each block."""
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __contains__(self, key: K) -> bool:
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return False
        block = self._blocks[i]
        j = bisect_left(block, key)
        return j < len(block) and not (key < block[j])

    def add(self, key: K) -> None:
        """Add ``key`` (a key already there is left as it is)."""
        if not self._blocks:
            self._blocks.append([key])
            self._maxes.append(key)
            self._len = 1
            return
        i = bisect_left(self._maxes, key)
        if i == len(self._blocks):  # beyond the largest: the common case of growing ids
            i -= 1
            self._blocks[i].append(key)
            self._maxes[i] = key
        else:
            block = self._blocks[i]
            j = bisect_left(block, key)
            if j < len(block) and not (key < block[j]):
                return
            insort(block, key)
        self._len += 1
        if len(self._blocks[i]) > 2 * _BLOCK:
            block = self._blocks[i]
            self._blocks[i : i + 1] = [block[:_BLOCK], block[_BLOCK:]]
            self._maxes[i : i + 1] = [block[_BLOCK - 1], block[-1]]

    def discard(self, key: K) -> bool:
        """Remove ``key``; return whether it was there."""
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return False
        block = self._blocks[i]
        j = bisect_left(block, key)
        if j == len(block) or key < block[j]:
            return False
        del block[j]
        self._len -= 1
        if block:
            self._maxes[i] = block[-1]
        else:
            del self._blocks[i], self._maxes[i]
        return True

    def first(self) -> K | None:
        return self._blocks[0][0] if self._blocks else None

    def ascending(self, start: K | None = None, *, inclusive: bool = True) -> Iterator[K]:
        """The keys from ``start`` (all if None) upwards; ``inclusive``: ``start`` itself too."""
        if start is None:
            i, j = 0, 0
        else:
            find = bisect_left if inclusive else bisect_right
            i = find(self._maxes, start)
            j = find(self._blocks[i], start) if i < len(self._blocks) else 0
        blocks = self._blocks
        while i < len(blocks):
            block = blocks[i]
            while j < len(block):
                yield block[j]
                j += 1
            i, j = i + 1, 0

    def descending(self, below: K | None = None) -> Iterator[K]:
        """The keys below ``below`` (all if None), largest first."""
        if below is None:
            i = len(self._blocks) - 1
            j = len(self._blocks[i]) if self._blocks else 0
        else:
            i = min(bisect_left(self._maxes, below), len(self._blocks) - 1)
            j = bisect_left(self._blocks[i], below) if i >= 0 else 0
        while i >= 0:
            block = self._blocks[i]
            for k in range(j - 1, -1, -1):
                yield block[k]
            i -= 1
            j = len(self._blocks[i]) if i >= 0 else 0
