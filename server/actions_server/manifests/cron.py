"""Cron expressions → APScheduler 3 triggers, with standard cron semantics.

Five fields (`minute hour day month day-of-week`) or six with seconds first.
Where APScheduler and cron differ, cron wins, since that is what crontabs are
copied from:
- APScheduler numbers days of the week from Monday = 0, cron from Sunday = 0
  (and 7); the day-of-week field is parsed here and handed over by name.
- When both day-of-month and day-of-week are restricted, cron runs on days
  matching either (`0 9 1 * mon`: the 1st, and every Monday); APScheduler
  requires both, so such an expression becomes two triggers joined by OR.
- A schedule pinned to an hour runs once when clocks go back and the hour
  repeats (see `pins_hour`; the scheduler skips the second pass).
"""

from __future__ import annotations

import datetime
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_TOKEN = re.compile(r"^([0-7]|sun|mon|tue|wed|thu|fri|sat)$", re.IGNORECASE)


class CronError(ValueError):
    """An expression or time zone that cannot be scheduled; the message says why."""


def _day(token: str, expression: str) -> int:
    if not _DAY_TOKEN.match(token):
        raise CronError(f"cron {expression!r}: {token!r} is not a day of the week (0-7 or sun-sat)")
    if token.isdigit():
        return int(token) % 7
    return _DAY_NAMES.index(token.lower())


def days_of_week(field: str, expression: str) -> set[int] | None:
    """The days (Sunday = 0) a day-of-week field selects; None for every day."""
    if field in ("*", "?"):
        return None
    days: set[int] = set()
    for part in field.split(","):
        spec, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"cron {expression!r}: bad step {step_text!r} in {part!r}")
            step = int(step_text)
        if spec in ("*", "?"):
            first, last = 0, 6
        elif "-" in spec:
            low, _, high = spec.partition("-")
            first, last = _day(low, expression), _day(high, expression)
            if high.isdigit() and int(high) == 7:
                last = 7
            if last < first:
                raise CronError(f"cron {expression!r}: range {spec!r} runs backwards")
        else:
            first = _day(spec, expression)
            last = 6 if step_text else first
        days.update(d % 7 for d in range(first, last + 1, step))
    return days


def pins_hour(expression: str) -> bool:
    """Whether `expression` names its hours (not `*` or `*/n`): it runs once in a repeated hour."""
    fields = expression.split()
    return len(fields) in (5, 6) and not fields[-4].startswith("*")


def repeats_wall_time(moment: datetime.datetime, zone: ZoneInfo) -> bool:
    """Whether `moment` is the second time its wall-clock time comes round in `zone`.

    True inside the hour that repeats when clocks go back, on its second pass.
    """
    local = moment.astimezone(zone)
    return local.fold == 1 and local.utcoffset() != local.replace(fold=0).utcoffset()


def parse_cron(expression: str, timezone: str = "UTC") -> BaseTrigger:
    """The trigger for `expression` in `timezone`; raise CronError if either is invalid."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(
            f"unknown time zone {timezone!r} (use an IANA name such as Europe/Paris)"
        ) from None
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise CronError(
            f"cron {expression!r} has {len(fields)} fields; expected 5 "
            "(minute hour day month weekday) or 6 (second first)"
        )
    second = fields[0] if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields[-5:]
    days = days_of_week(weekday, expression)
    day_of_week = "*" if days is None else ",".join(_DAY_NAMES[d] for d in sorted(days))
    common = {"second": second, "minute": minute, "hour": hour, "month": month, "timezone": zone}
    try:
        if days is not None and day not in ("*", "?"):
            return OrTrigger(
                [CronTrigger(day=day, **common), CronTrigger(day_of_week=day_of_week, **common)]
            )
        return CronTrigger(day=day, day_of_week=day_of_week, **common)
    except ValueError as exc:
        raise CronError(f"cron {expression!r}: {exc}") from None
