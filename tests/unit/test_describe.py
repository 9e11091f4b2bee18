"""Triggers in words: literal expectations, table-driven."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from kairos.models import CronTriggerSpec, DateTriggerSpec, IntervalTriggerSpec
from kairos.triggers.describe import describe, describe_crontab


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("0 2 * * 0", "At 02:00 on Sunday"),
        ("0 2 * * 7", "At 02:00 on Sunday"),
        ("* * * * *", "Every minute"),
        ("*/5 * * * *", "Every 5 minutes"),
        ("0 * * * *", "Every hour"),
        ("5,35 * * * *", "At minutes 5 and 35 past every hour"),
        ("30 9,17 * * 1-5", "At 09:30 and 17:30 on Monday through Friday"),
        ("0 */2 * * *", "At minute 0 past every 2nd hour"),
        ("15 9-17 * * *", "At minute 15 past hours 09 through 17"),
        (
            "*/10 8-18 * * mon-fri",
            "Every 10 minutes of hours 08 through 18 on Monday through Friday",
        ),
        ("* 9 * * *", "Every minute of hour 09"),
        ("0 0 1 * *", "At 00:00 on day 1 of the month"),
        ("0 0 1,15 * *", "At 00:00 on days 1 and 15 of the month"),
        ("0 0 */2 * *", "At 00:00 every 2nd day of the month"),
        ("0 0 * * MON,Wed,fri", "At 00:00 on Monday, Wednesday and Friday"),
        ("0 0 1 * 1", "At 00:00 on day 1 of the month or on Monday"),
        ("0 12 * jan-mar *", "At 12:00 in January through March"),
        ("0 6 * */3 *", "At 06:00 every 3rd month"),
        ("0 0 29 2 *", "At 00:00 on day 29 of the month in February"),
        ("0 0 1-7/2 * *", "At 00:00 on days 1 through 7 (every 2nd) of the month"),
        ("0 0 L * *", "At 00:00 on the last day of the month"),
        ("0 0 1,15,LW * *", "At 00:00 on days 1 and 15 and the last weekday of the month"),
        ("0 9 * * 5L", "At 09:00 on the last Friday of the month"),
        ("0 9 * * fri#3", "At 09:00 on the third Friday of the month"),
        ("0 9 * * 1,5#1", "At 09:00 on Monday and the first Friday of the month"),
        (
            "0 9 l * 0#2",
            "At 09:00 on the last day of the month or on the second Sunday of the month",
        ),
        ("@daily", "At 00:00"),
        ("@weekly", "At 00:00 on Sunday"),
        ("@hourly", "Every hour"),
    ],
)
def test_crontabs_in_words(expression: str, words: str) -> None:
    assert describe_crontab(expression) == words


@pytest.mark.parametrize("expression", ["0 0 * * 5#x", "0 0 * 13 *", "0 0 * * 5#9", "x y z w v"])
def test_a_crontab_without_words_is_shown_as_written(expression: str) -> None:
    assert describe_crontab(expression) == expression


UTC = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (IntervalTriggerSpec(type="interval", hours=1, minutes=30), "Every 1 hour and 30 minutes"),
        (IntervalTriggerSpec(type="interval", days=1), "Every 1 day"),
        (IntervalTriggerSpec(type="interval", seconds=0.5), "Every 0.5 seconds"),
        (IntervalTriggerSpec(type="interval", weeks=2, seconds=1), "Every 2 weeks and 1 second"),
        (
            CronTriggerSpec(type="cron", second="*/10", minute="*"),
            "Cron fields minute=*, second=*/10",
        ),
    ],
)
def test_other_triggers_in_words(spec: IntervalTriggerSpec | CronTriggerSpec, words: str) -> None:
    assert describe(spec, UTC) == words


def test_a_one_off_is_shown_in_its_zone() -> None:
    spec = DateTriggerSpec.model_validate({"type": "date", "run_date": "2026-12-01T08:00:00Z"})
    assert (
        describe(spec, ZoneInfo("Europe/Berlin")) == "Once, at 2026-12-01 09:00:00 (Europe/Berlin)"
    )
