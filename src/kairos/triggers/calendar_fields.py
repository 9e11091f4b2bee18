"""Parsing APScheduler-style cron field expressions into sets of allowed values."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date

from kairos.errors import InvalidField

__all__ = ["DayRule", "parse_day", "parse_values"]

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
RANGES = {
    "year": (1970, 2999),
    "month": (1, 12),
    "day": (1, 31),
    "week": (1, 53),
    "day_of_week": (0, 6),
    "hour": (0, 23),
    "minute": (0, 59),
    "second": (0, 59),
}
_NAMES = {"month": MONTHS, "day_of_week": WEEKDAYS}
_NAME_BASE = {"month": 1, "day_of_week": 0}
_TERM = re.compile(r"^(?:(\*)|([a-z0-9]+)(?:-([a-z0-9]+))?)(?:/(\d+))?$")
_NTH = re.compile(r"^(1st|2nd|3rd|4th|5th|last)\s+(" + "|".join(WEEKDAYS) + r")$")

DayRule = Callable[[date], bool]


def parse_values(field: str, expression: str) -> list[int]:
    """Sorted allowed values of ``field`` for ``expression`` (``*``, ``*/n``, ``a``, ``a-b``,
    ``a-b/n``, names, comma lists). Raise ``InvalidField`` on ``("trigger", field)``."""
    low, high = RANGES[field]
    values: set[int] = set()
    for term in _terms(field, expression):
        match = _TERM.match(term)
        if match is None:
            raise _bad(field, expression, f"cannot read {term!r}")
        star, first, last, step = match.groups()
        start = low if star else _value(field, expression, first)
        stop = high if star or (step and last is None) else start
        if last is not None:
            stop = _value(field, expression, last)
        if stop < start:
            raise _bad(field, expression, f"range {term!r} runs backwards")
        stride = int(step) if step else 1
        if not 1 <= stride <= max(stop - start, 1):
            raise _bad(field, expression, f"step {stride} must be 1-{max(stop - start, 1)}")
        values.update(range(start, stop + 1, stride))
    return sorted(values)


def parse_day(expression: str) -> tuple[list[int], list[DayRule]]:
    """Day-of-month values plus the rules for ``last``, ``last fri`` and ``2nd fri`` terms."""
    numeric: list[str] = []
    rules: list[DayRule] = []
    for term in _terms("day", expression):
        if term == "last":
            rules.append(lambda d: d.day == calendar.monthrange(d.year, d.month)[1])
            continue
        nth = _NTH.match(term)
        if nth is None:
            numeric.append(term)
            continue
        weekday = WEEKDAYS.index(nth.group(2))
        rules.append(_nth_weekday(nth.group(1), weekday))
    days = parse_values("day", ",".join(numeric)) if numeric else []
    return days, rules


def _nth_weekday(which: str, weekday: int) -> DayRule:
    if which == "last":
        return lambda d: d.weekday() == weekday and d.day + 7 > _days_in(d)
    index = int(which[0])
    return lambda d: d.weekday() == weekday and (d.day - 1) // 7 + 1 == index


def _days_in(d: date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def _terms(field: str, expression: str) -> list[str]:
    terms = [" ".join(t.split()) for t in expression.strip().lower().split(",")]
    if not all(terms):
        raise _bad(field, expression, "empty term")
    return terms


def _value(field: str, expression: str, text: str) -> int:
    names = _NAMES.get(field)
    if names is not None and text in names:
        return names.index(text) + _NAME_BASE[field]
    if not text.isdigit():
        raise _bad(field, expression, f"{text!r} is not a number or a known name")
    value = int(text)
    low, high = RANGES[field]
    if not low <= value <= high:
        raise _bad(field, expression, f"{value} is out of range {low}-{high}")
    return value


def _bad(field: str, expression: str, why: str) -> InvalidField:
    return InvalidField(("trigger", field), f"bad {field} {expression!r}: {why}")
