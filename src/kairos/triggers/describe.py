"""Triggers in words, for people: ``0 2 * * 0`` -> "At 02:00 on Sunday". Call it on specs that
``build`` accepted; anything it has no words for is shown as written, never an error."""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo

from kairos.models import (
    CRON_FIELDS,
    CronTriggerSpec,
    DateTriggerSpec,
    IntervalTriggerSpec,
    TriggerSpec,
)
from kairos.triggers import localize
from kairos.triggers.cron import MACROS

__all__ = ["describe", "describe_crontab"]

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAY_NUMBERS = {name[:3].lower(): str(i) for i, name in enumerate(_DAYS)}
_LAST_DAYS = {"L": "the last day", "LW": "the last weekday"}
_NTH = ["first", "second", "third", "fourth", "fifth"]
_MONTH_NUMBERS = {name[:3].lower(): str(i + 1) for i, name in enumerate(_MONTHS)}


def describe(spec: TriggerSpec, zone: ZoneInfo) -> str:
    if isinstance(spec, DateTriggerSpec):
        moment = localize(spec.run_date, zone).astimezone(zone)
        return f"Once, at {moment:%Y-%m-%d %H:%M:%S} ({zone.key})"
    if isinstance(spec, IntervalTriggerSpec):
        return "Every " + _duration(spec.total_seconds)
    return _cron_words(spec)


def describe_crontab(expression: str) -> str:
    """A standard 5-field crontab in words; the expression as written if it has none (a job
    stored under older rules must not break the pages that list it)."""
    fields = MACROS.get(expression.strip().lower(), expression).upper().split()
    if len(fields) != 5:
        return expression
    try:
        return _crontab_words(*fields)
    except (ValueError, IndexError):
        return expression


def _crontab_words(minute: str, hour: str, day: str, month: str, weekday: str) -> str:
    words = [_time(minute, hour)]
    days = _days(day, weekday)
    if days:
        words.append(days)
    if month != "*":
        words.append(_months(month))
    return " ".join(words)


def _cron_words(spec: CronTriggerSpec) -> str:
    if spec.expression is not None:
        return describe_crontab(spec.expression)
    fields = [
        f"{name}={getattr(spec, name)}" for name in CRON_FIELDS if getattr(spec, name) is not None
    ]
    return "Cron fields " + ", ".join(fields)


# Time of day ------------------------------------------------------------------------------------


def _time(minute: str, hour: str) -> str:
    if hour == "*":
        if minute == "*":
            return "Every minute"
        if _step_of_all(minute):
            return f"Every {_step_of_all(minute)} minutes"
        if minute == "0":
            return "Every hour"
        return f"At {_plural('minute', minute)} past every hour"
    if minute.isdigit() and all(part.isdigit() for part in hour.split(",")):
        times = [f"{int(h):02d}:{int(minute):02d}" for h in hour.split(",")]
        return "At " + _and(times)
    if minute == "*":
        return f"Every minute of {_hours(hour)}"
    if _step_of_all(minute):
        return f"Every {_step_of_all(minute)} minutes of {_hours(hour)}"
    return f"At {_plural('minute', minute)} past {_hours(hour)}"


def _hours(hour: str) -> str:
    step = _step_of_all(hour)
    if step:
        return f"every {_ordinal(int(step))} hour"
    return _plural("hour", hour, show=lambda h: f"{int(h):02d}")


# Days and months --------------------------------------------------------------------------------


def _days(day: str, weekday: str) -> str:
    on_day = "" if day in ("*", "?") else _days_of_month(day)
    on_weekday = "" if weekday in ("*", "?") else "on " + _weekdays(weekday)
    if on_day and on_weekday:
        return f"{on_day} or {on_weekday}"  # cron: either matches
    return on_day or on_weekday


def _days_of_month(day: str) -> str:
    step = _step_of_all(day)
    if step:
        return f"every {_ordinal(int(step))} day of the month"
    items = day.split(",")
    plain = ",".join(item for item in items if item not in _LAST_DAYS)
    words = [_plural("day", plain)] if plain else []
    words += [_LAST_DAYS[item] for item in items if item in _LAST_DAYS]
    return "on " + _and(words) + " of the month"


def _weekdays(weekday: str) -> str:
    """``1-5`` -> "Monday through Friday"; ``5#3,1L`` -> "the third Friday and the last Monday
    of the month"."""
    items = weekday.split(",")
    plain = ",".join(item for item in items if not _in_month(item))
    words = [_list(plain, _day_name)] if plain else []
    words += [_nth_weekday(item) for item in items if _in_month(item)]
    in_month = any(_in_month(item) for item in items)
    return _and(words) + (" of the month" if in_month else "")


def _in_month(item: str) -> bool:
    """A day of the week counted within its month: ``5L`` (the last Friday), ``5#3``."""
    return item.endswith("L") or "#" in item


def _nth_weekday(item: str) -> str:
    if item.endswith("L"):
        return f"the last {_day_name(item[:-1])}"
    day, _, nth = item.partition("#")
    return f"the {_NTH[int(nth) - 1]} {_day_name(day)}"


def _day_name(token: str) -> str:
    return _DAYS[int(_DAY_NUMBERS.get(token.lower(), token)) % 7]


def _months(month: str) -> str:
    step = _step_of_all(month)
    if step:
        return f"every {_ordinal(int(step))} month"

    def name(token: str) -> str:
        return _MONTHS[int(_MONTH_NUMBERS.get(token.lower(), token)) - 1]

    return "in " + _list(month, name)


# Lists, ranges and steps ------------------------------------------------------------------------


def _list(field: str, name: Callable[[str], str]) -> str:
    """``1-5`` -> "Monday through Friday", ``1,3`` -> "Monday and Wednesday"."""
    parts = []
    for part in field.split(","):
        span, _, step = part.partition("/")
        first, _, last = span.partition("-")
        if span == "*":
            text = "every one"
        elif last:
            text = f"{name(first)} through {name(last)}"
        else:
            text = name(first)
        parts.append(f"{text} (every {_ordinal(int(step))})" if step else text)
    return _and(parts)


def _plural(noun: str, field: str, show: Callable[[str], str] = str) -> str:
    items = _list(field, show)
    single = field.isdigit()
    return f"{noun} {items}" if single else f"{noun}s {items}"


def _step_of_all(field: str) -> str:
    """``*/15`` -> "15"; anything else -> ""."""
    return field[2:] if field.startswith("*/") and field[2:].isdigit() else ""


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _duration(seconds: float) -> str:
    units = [("week", 604_800), ("day", 86_400), ("hour", 3_600), ("minute", 60)]
    parts = []
    left = seconds
    for unit, size in units:
        count = int(left // size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
            left -= count * size
    if left or not parts:
        text = f"{left:g}"
        parts.append(f"{text} second{'s' if text != '1' else ''}")
    return _and(parts)
