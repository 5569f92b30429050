"""Cron expressions with standard (Sunday = 0) weekday semantics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from actions_server.manifests.cron import (
    CronError,
    days_of_week,
    parse_cron,
    pins_hour,
    repeats_wall_time,
)


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


def test_day_of_month_and_day_of_week_both_restricted_means_either() -> None:
    # Cron's rule: the 1st of the month, and every Monday (APScheduler alone needs both).
    fires, after = [], datetime(2026, 11, 27, tzinfo=UTC)  # a Friday
    for _ in range(3):
        after = next_fire("0 9 1 * mon", after) + timedelta(seconds=1)
        fires.append(after.date().isoformat())
    assert fires == ["2026-11-30", "2026-12-01", "2026-12-07"]


def test_only_one_field_restricted_keeps_the_and() -> None:
    assert next_fire("0 9 13 * *", datetime(2026, 11, 27, tzinfo=UTC)).day == 13
    assert next_fire("0 9 * * fri", datetime(2026, 11, 27, 10, tzinfo=UTC)).day == 4


def test_the_repeated_hour_is_recognised_on_its_second_pass_only() -> None:
    new_york = ZoneInfo("America/New_York")
    # 2026-11-01: clocks go back from 02:00 EDT to 01:00 EST; 01:30 happens twice.
    first = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    second = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 01:30 EST
    assert first.astimezone(new_york).hour == second.astimezone(new_york).hour == 1
    assert not repeats_wall_time(first, new_york)
    assert repeats_wall_time(second, new_york)
    assert not repeats_wall_time(datetime(2026, 11, 1, 7, 30, tzinfo=UTC), new_york)


@pytest.mark.parametrize(
    ("expression", "pinned"),
    [("30 1 * * *", True), ("0 30 1 * * *", True), ("0 * * * *", False), ("*/5 */2 * * *", False)],
)
def test_pins_hour(expression: str, pinned: bool) -> None:
    assert pins_hour(expression) is pinned
