"""Standard 5-field crontab expressions, with cron's own meaning.

``minute hour day-of-month month day-of-week``: day of week 0 and 7 are Sunday, names (``mon``,
``jan``) in any case, ranges, lists and steps; when both day fields are restricted either one
matching is enough (the cron OR rule). ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``,
``@daily``, ``@midnight`` and ``@hourly`` are accepted. For seconds, use the keyword form.
Also as in Quartz and cronsim, in a list or alone: ``L`` (the last day of the month) and ``LW``
(its last weekday) as a day of the month; ``5L`` (the month's last Friday) and ``5#3`` (its third
Friday, ``fri#3`` alike) as a day of the week. Nothing else may carry ``L`` or ``#``: cronsim
would take ``L/2`` as ``L``, silently.

DST follows Debian cron through cronsim: a fire at a time that a spring-forward skips happens at
the jump; at fall-back a fixed-time job fires once, while ``*`` or ``*/n`` hour or minute jobs keep
firing by real time through the repeated hour.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from kairos.errors import InvalidField
from kairos.triggers.base import Trigger

__all__ = ["CrontabTrigger"]

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_LOC = ("trigger", "expression")
# The only day fields that may say "last" or "n-th" (upper case; names are read by cronsim).
_LAST_DAYS = re.compile(r"LW?")
_NTH = re.compile(r"[0-7]L|([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)#[1-5]")
# cronsim walks at most 50 years; a schedule with no fire in that span ends.
_PROBE = datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))


class CrontabTrigger(Trigger):
    def __init__(self, expression: str, zone: ZoneInfo) -> None:
        self.expression = _normalise(expression)
        self.zone = zone
        _check(self.expression, expression)

    def next_after(self, after: datetime) -> datetime | None:
        # cronsim drops microseconds and then steps forward at least a second, which is exactly
        # "strictly after" for whole-second fire times: the answer depends on the second alone.
        return _next_after(self.expression, self.zone, after.astimezone(UTC).replace(microsecond=0))

    def latest_at_or_before(self, now: datetime, not_before: datetime) -> datetime | None:
        # One step back from just after ``now`` gives the last fire at or before it.
        after_now = (now + timedelta(seconds=1)).astimezone(self.zone).replace(microsecond=0)
        try:
            fire = next(CronSim(self.expression, after_now, reverse=True))
        except StopIteration:
            return None
        fire = fire.astimezone(self.zone)
        fire_utc = fire.astimezone(UTC)
        if fire_utc > now.astimezone(UTC) or fire_utc < not_before.astimezone(UTC):
            return super().latest_at_or_before(now, not_before)
        return fire


@functools.lru_cache(maxsize=4096)
def _next_after(expression: str, zone: ZoneInfo, after: datetime) -> datetime | None:
    """Cached: jobs sharing an expression are created, or fire, in the same second by the
    thousand, and cronsim's parse and walk cost a tenth of a ``PUT /jobs/{id}``. Keyed by the
    UTC instant: local times differing only in DST fold compare equal."""
    try:
        return next(CronSim(expression, after.astimezone(zone))).astimezone(zone)
    except StopIteration:
        return None


@functools.lru_cache(maxsize=4096)
def _check(normalised: str, expression: str) -> None:
    """Raise ``InvalidField`` unless the expression parses and fires. Cached: many jobs share a
    handful of expressions, and a rare one (``0 0 29 2 *``) takes cronsim a long walk."""
    _, _, day, _, weekday = normalised.upper().split(" ")
    for items, allowed, hint in (
        (day, _LAST_DAYS, "in the day of the month, L (the last day) and LW take no range or step"),
        (weekday, _NTH, "in the day of the week, 5L is the last Friday, 5#3 the third"),
    ):
        for item in items.split(","):
            if ("L" in item or "#" in item) and not allowed.fullmatch(item):
                raise InvalidField(_LOC, f"cannot read {item!r} in {expression!r}: {hint}")
    try:
        sim = CronSim(normalised, _PROBE)
    except CronSimError as exc:
        raise InvalidField(_LOC, f"{exc} in {expression!r}") from None
    try:
        next(sim)
    except StopIteration:
        raise InvalidField(_LOC, f"{expression!r} never fires") from None


def _normalise(expression: str) -> str:
    text = " ".join(expression.split())
    text = MACROS.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise InvalidField(
            _LOC,
            f"expected 5 fields 'minute hour day-of-month month day-of-week' (or a macro such "
            f"as @daily), got {len(fields)} in {expression!r}; for seconds use the keyword form",
        )
    return text
