"""``ChangeRows``: which rows of the change feed a node has read, with ids that commit out of
order and holes left by transactions rolled back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kairos.store.changes import GAP_WAIT_S, ChangeRows


def rows(*ids: int) -> list[tuple[int, int | None, str | None]]:
    return [(n, None, f"job-{n}") for n in ids]


def ids(found: list[Sequence[Any]]) -> list[int]:
    return [row[0] for row in found]


def test_rows_in_order_are_each_read_once_and_the_floor_follows() -> None:
    feed = ChangeRows(4)
    assert ids(feed.fresh(rows(5, 6), 0.0)) == [5, 6]
    assert (feed.floor, feed.seen) == (6, set())
    assert ids(feed.fresh(rows(7), 0.1)) == [7]
    assert feed.floor == 7


def test_a_row_committed_after_a_higher_one_is_still_read_and_the_higher_not_again() -> None:
    feed = ChangeRows(4)
    assert ids(feed.fresh(rows(6), 0.0)) == [6]  # 5's transaction is still open
    assert (feed.floor, feed.seen) == (4, {6})
    assert ids(feed.fresh(rows(5, 6, 7), 0.1)) == [5, 7]
    assert (feed.floor, feed.seen) == (7, set())


def test_a_hole_left_for_good_is_given_up_on_after_a_while() -> None:
    feed = ChangeRows(4)
    feed.fresh(rows(6, 8), 0.0)  # 5 and 7 rolled back
    assert ids(feed.fresh(rows(6, 8), GAP_WAIT_S)) == []
    assert feed.floor == 4
    assert ids(feed.fresh(rows(6, 8, 9), GAP_WAIT_S + 0.1)) == [9]
    assert (feed.floor, feed.seen) == (6, {8, 9})  # past the first hole; the second is newer
    feed.fresh(rows(8, 9), 2 * GAP_WAIT_S + 0.2)
    assert (feed.floor, feed.seen) == (9, set())
