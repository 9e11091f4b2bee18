"""Random schedules checked against independent implementations.

croniter is the oracle for crontab expressions; APScheduler 3's CronTrigger for the keyword form.
Both run in UTC here, where the three agree by definition (they differ on DST by design).
Known croniter 7.0.0 divergences, left out of what is generated: it reads a one-value range such
as ``0-0`` in the minute field as minute 1; and it applies the day OR rule when a day field is
``*/n``, where cron (Vixie and Debian, and so Kairos) treats a field starting with ``*`` as
unrestricted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger as ApschedulerCron
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kairos import triggers
from kairos.models import CronTriggerSpec

FIRES = 20
START = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)
RUN = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _field(
    low: int, high: int, names: list[str] | None = None, star_steps: bool = True
) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    single = value.map(str)
    if names:
        single = single | st.sampled_from(names)
    span = (
        st.tuples(value, value).filter(lambda p: p[0] != p[1]).map(lambda p: f"{min(p)}-{max(p)}")
    )
    bases = ["*", f"{low}-{high}"] if star_steps else [f"{low}-{high}"]
    step = st.tuples(st.sampled_from(bases), st.integers(1, high - low)).map(
        lambda p: f"{p[0]}/{p[1]}"
    )
    term = single | span | step
    return st.just("*") | term | st.lists(term, min_size=2, max_size=3).map(",".join)


MONTH_NAMES = ["jan", "feb", "mar", "jun", "dec"]
CRONTAB = st.tuples(
    _field(0, 59),
    _field(0, 23),
    _field(1, 28, star_steps=False),
    _field(1, 12, MONTH_NAMES),
    _field(0, 6, ["sun", "mon", "fri"], star_steps=False),
).map(" ".join)


def _ours(spec: dict[str, Any], start: datetime) -> list[datetime]:
    trigger = triggers.build(CronTriggerSpec(type="cron", **spec), UTC)  # type: ignore[arg-type]
    return [f.astimezone(UTC) for f in triggers.preview(trigger, start, FIRES)]


@RUN
@given(expression=CRONTAB, start=START)
def test_crontab_agrees_with_croniter(expression: str, start: datetime) -> None:
    oracle = croniter(expression, start)
    expected = [oracle.get_next(datetime).astimezone(UTC) for _ in range(FIRES)]
    assert _ours({"expression": expression}, start) == expected


KEYWORD = st.fixed_dictionaries(
    {},
    optional={
        "month": _field(1, 12, MONTH_NAMES),
        "day": _field(1, 28),
        "day_of_week": _field(0, 6, ["mon", "wed", "sun"]),
        "hour": _field(0, 23),
        "minute": _field(0, 59),
        "second": _field(0, 59),
    },
).filter(bool)


@RUN
@given(fields=KEYWORD, start=START)
def test_keyword_fields_agree_with_apscheduler(fields: dict[str, str], start: datetime) -> None:
    oracle = ApschedulerCron(timezone=UTC, **fields)
    expected: list[datetime] = []
    previous = None
    now = start + timedelta(seconds=1)
    now = now.replace(microsecond=0)
    for _ in range(FIRES):
        fire = oracle.get_next_fire_time(previous, now)
        if fire is None:
            break
        expected.append(fire.astimezone(UTC))
        previous = fire
        now = fire + timedelta(seconds=1)
    assert _ours(fields, start) == expected
