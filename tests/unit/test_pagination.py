"""Pages and cursors, as every adapter gets them from the ``Scheduler``."""

from __future__ import annotations

import pytest

from kairos.errors import InvalidField
from kairos.models import JobRecord, JobSpec, JobState
from kairos.pagination import (
    MAX_ID,
    Page,
    encode_cursor,
    id_cursor,
    job_cursor,
    job_key,
    job_query,
    page_of,
)

SPEC = JobSpec.model_validate(
    {"trigger": {"type": "interval", "seconds": 5}, "target": {"url": "http://x.test/"}}
)


def test_a_page_fetched_with_one_more_row_than_its_limit_has_a_next_cursor() -> None:
    page = page_of([30, 20, 10], 2, lambda run_id: run_id)
    assert page == Page([30, 20], encode_cursor(20))
    assert id_cursor(page.next_cursor) == 20


@pytest.mark.parametrize("rows", [[], [30], [30, 20]])
def test_the_last_page_has_no_next_cursor(rows: list[int]) -> None:
    assert page_of(rows, 2, lambda run_id: run_id) == Page(rows, None)


@pytest.mark.parametrize(
    ("next_run_us", "by_next_run", "after"),
    [
        (1_700_000_000_000_000, True, (1_700_000_000_000_000, "a/b")),
        (None, True, (None, "a/b")),
        (1_700_000_000_000_000, False, (None, "a/b")),
    ],
)
def test_a_job_cursor_carries_where_its_page_ended(
    next_run_us: int | None, by_next_run: bool, after: tuple[int | None, str]
) -> None:
    job = JobRecord("a/b", SPEC, None, next_run_us, 1, 1)
    cursor = encode_cursor(job_key(job, by_next_run))
    assert job_cursor(cursor, by_next_run=by_next_run) == after


@pytest.mark.parametrize("cursor", ["", "!!", encode_cursor("x"), encode_cursor(MAX_ID + 1)])
def test_a_cursor_that_is_not_ours_names_the_cursor(cursor: str) -> None:
    with pytest.raises(InvalidField) as raised:
        id_cursor(cursor)
    assert raised.value.loc == ("cursor",)


def test_a_cursor_of_the_id_order_is_refused_for_the_next_run_order() -> None:
    with pytest.raises(InvalidField, match="sort"):
        job_cursor(encode_cursor("job-1"), by_next_run=True)


def test_a_job_query_orders_by_next_run_only_when_asked() -> None:
    query = job_query(prefix="a", state=JobState.PAUSED, tag="t", sort="next_run")
    assert (query.prefix, query.state, query.tag, query.by_next_run) == (
        "a",
        JobState.PAUSED,
        "t",
        True,
    )
    assert not job_query(prefix=None, state=None, tag=None, sort="id").by_next_run
