"""``OrderedKeys`` against a sorted list, through adds and removals that split blocks and empty
them (with blocks of four keys)."""

from __future__ import annotations

import random

import pytest

from kairos.store.memory import ordered
from kairos.store.memory.ordered import OrderedKeys


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ordered, "_BLOCK", 4)


@pytest.mark.parametrize("seed", range(20))
def test_keys_read_in_order_from_any_key_after_any_changes(seed: int) -> None:
    chance = random.Random(seed)
    keys: OrderedKeys[int] = OrderedKeys()
    expected: set[int] = set()
    for _ in range(chance.randint(0, 300)):
        key = chance.randint(0, 100)
        if chance.random() < 0.6:
            keys.add(key)
            expected.add(key)
        else:
            assert keys.discard(key) == (key in expected)
            expected.discard(key)
    in_order = sorted(expected)
    assert list(keys.ascending()) == in_order
    assert list(keys.descending()) == in_order[::-1]
    assert len(keys) == len(in_order)
    assert keys.first() == (in_order[0] if in_order else None)
    for key in range(-1, 102):
        assert (key in keys) == (key in expected)
        assert list(keys.ascending(key)) == [k for k in in_order if k >= key]
        assert list(keys.ascending(key, inclusive=False)) == [k for k in in_order if k > key]
        assert list(keys.descending(key)) == [k for k in reversed(in_order) if k < key]


def test_tuples_order_by_their_first_then_second_field() -> None:
    keys: OrderedKeys[tuple[int, str]] = OrderedKeys()
    for key in [(2, "b"), (1, "z"), (2, "a"), (1, "a")]:
        keys.add(key)
    assert list(keys.ascending((1, "z"), inclusive=False)) == [(2, "a"), (2, "b")]
