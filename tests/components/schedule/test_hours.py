"""Running hours a month under a schedule, worked out by hand for 2027."""

from __future__ import annotations

import pytest

from components.schedule.cron import parse_eventbridge, parse_unix
from components.schedule.hours import (
    ScheduledSize,
    instance_hours_per_month,
    running_hours_per_month,
)

# 2027 has 365 days, 261 of them Monday to Friday.


def test_office_hours_on_weekdays() -> None:
    # 12 hours on each of 261 weekdays = 3,132 a year = 261 a month.
    hours = running_hours_per_month(
        parse_eventbridge("cron(0 20 ? * MON-FRI *)"), parse_eventbridge("cron(0 8 ? * MON-FRI *)")
    )
    assert hours == pytest.approx(261.0)


def test_every_night_off() -> None:
    # 12 hours a day, 365 days = 4,380 a year = 365 a month.
    hours = running_hours_per_month(
        parse_eventbridge("cron(0 20 * * ? *)"), parse_eventbridge("cron(0 8 * * ? *)")
    )
    assert hours == pytest.approx(365.0)


def test_minutes_count_and_a_start_that_never_comes_leaves_only_the_first_days() -> None:
    # Stopped at 18:30, started at 08:15: 10 h 15 min a day.
    hours = running_hours_per_month(
        parse_eventbridge("cron(30 18 * * ? *)"), parse_eventbridge("cron(15 8 * * ? *)")
    )
    assert hours == pytest.approx(10.25 * 365 / 12)
    # Started only in 2026: the year begins after its last stop (Dec 31st, 20:00), so 0.
    stop_only = running_hours_per_month(
        parse_eventbridge("cron(0 20 * * ? *)"), parse_eventbridge("cron(0 8 * * ? 2026)")
    )
    assert stop_only == 0.0
    # Started only in 2027's January: 31 days of 12 hours, then stopped for good.
    january = running_hours_per_month(
        parse_eventbridge("cron(0 20 * * ? *)"), parse_eventbridge("cron(0 8 * JAN ? 2027)")
    )
    assert january == pytest.approx(31 * 12 / 12)


def test_a_fleet_at_zero_at_night_and_one_by_day() -> None:
    actions = [
        (parse_unix("0 20 * * 1-5"), ScheduledSize(0, None, 0)),
        (parse_unix("0 8 * * 1-5"), ScheduledSize(1, None, None)),
    ]
    assert instance_hours_per_month(actions, min_size=1, max_size=4, desired=1) == pytest.approx(
        261.0
    )


def test_a_fleet_at_two_by_day_and_one_at_night() -> None:
    # 2 instances 12 h on 365 days + 1 instance the other 12 h: 3 x 12 x 365 / 12 = 1,095.
    actions = [
        (parse_unix("0 20 * * *"), ScheduledSize(1, None, None)),
        (parse_unix("0 8 * * *"), ScheduledSize(2, 4, None)),
    ]
    assert instance_hours_per_month(actions, min_size=1, max_size=4, desired=1) == pytest.approx(
        1095.0
    )


def test_the_maximum_caps_what_an_entry_asks() -> None:
    # desired 3 but the maximum is 2: 2 instances all year = 1,460 a month.
    actions = [(parse_unix("0 0 1 1 *"), ScheduledSize(None, 2, 3))]
    assert instance_hours_per_month(actions, min_size=1, max_size=4, desired=2) == pytest.approx(
        2 * 730
    )
