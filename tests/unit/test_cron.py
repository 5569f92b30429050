"""Cron expressions with standard (Sunday = 0) weekday semantics."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from actions_server.manifests.cron import CronError, days_of_week, parse_cron


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("*", None),
        ("0", {0}),
        ("7", {0}),
        ("1-5", {1, 2, 3, 4, 5}),
        ("mon-fri", {1, 2, 3, 4, 5}),
        ("SAT,sun", {0, 6}),
        ("*/2", {0, 2, 4, 6}),
        ("1-7/3", {1, 4, 0}),
        ("5/1", {5, 6}),
    ],
)
def test_days_of_week(field: str, days: set[int] | None) -> None:
    assert days_of_week(field, "expr") == days


def next_fire(expression: str, after: datetime, tz: str = "UTC") -> datetime:
    trigger = parse_cron(expression, tz)
    fire: datetime = trigger.get_next_fire_time(None, after)
    return fire


def test_sunday_is_zero_as_in_crontab() -> None:
    utc = ZoneInfo("UTC")
    # 2026-11-27 is a Friday; the next "0 2 * * 0" is Sunday 29th at 02:00.
    assert next_fire("0 2 * * 0", datetime(2026, 11, 27, tzinfo=utc)) == datetime(
        2026, 11, 29, 2, tzinfo=utc
    )


def test_six_fields_have_seconds_first() -> None:
    utc = ZoneInfo("UTC")
    assert next_fire("*/15 * * * * *", datetime(2026, 1, 1, 0, 0, 1, tzinfo=utc)) == datetime(
        2026, 1, 1, 0, 0, 15, tzinfo=utc
    )


def test_timezone_is_honoured() -> None:
    paris = ZoneInfo("Europe/Paris")
    fire = next_fire("0 9 * * *", datetime(2026, 6, 1, tzinfo=paris), "Europe/Paris")
    assert (fire.hour, fire.utcoffset().total_seconds()) == (9, 7200)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("expression", "tz", "message"),
    [
        ("* * *", "UTC", "has 3 fields"),
        ("61 * * * *", "UTC", "61"),
        ("* * * * funday", "UTC", "not a day of the week"),
        ("* * * * 5-1", "UTC", "runs backwards"),
        ("* * * * */0", "UTC", "bad step"),
        ("* * * * *", "Nowhere/City", "unknown time zone"),
    ],
)
def test_invalid(expression: str, tz: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(expression, tz)
