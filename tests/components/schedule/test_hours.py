"""Running hours a month under a schedule, worked out by hand for 2027."""

from __future__ import annotations

import dataclasses

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


def test_the_state_on_new_years_day_comes_from_the_year_before() -> None:
    # Stopped on 2026-12-31 and not started again before 2028: 2027 runs no hour at all.
    hours = running_hours_per_month(
        parse_eventbridge("cron(0 20 31 DEC ? 2026)"), parse_eventbridge("cron(0 8 1 JAN ? 2028)")
    )
    assert hours == 0.0


def test_a_host_is_running_until_its_first_stop() -> None:
    # Nothing fired before 2027: running from January 1st to June 1st, 20:00 (151 days and
    # 20 hours = 3,644 hours), then stopped for good.
    hours = running_hours_per_month(
        parse_eventbridge("cron(0 20 1 JUN ? 2027)"), parse_eventbridge("cron(0 8 1 JAN ? 2030)")
    )
    assert hours == pytest.approx(3644 / 12)


def test_a_night_shift_counts_the_part_hour_left_at_the_years_end() -> None:
    # Running 18:30 to 06:00: 11.5 hours a day, the last 5.5 of them on December 31st.
    hours = running_hours_per_month(
        parse_eventbridge("cron(0 6 * * ? *)"), parse_eventbridge("cron(30 18 * * ? *)")
    )
    assert hours == pytest.approx(11.5 * 365 / 12, rel=1e-12)


def test_when_stop_and_start_fire_together_the_start_wins() -> None:
    # Both at 08:00: running 08:00-20:00 every day.
    hours = running_hours_per_month(
        parse_eventbridge("cron(0 8,20 * * ? *)"), parse_eventbridge("cron(0 8 * * ? *)")
    )
    assert hours == pytest.approx(365.0)


def test_a_fleets_part_hours_count_and_later_entries_win_a_tie() -> None:
    # 0 at 20:00, 1 from 08:15: 11.75 instance-hours a day.
    actions = [
        (parse_unix("0 20 * * *"), ScheduledSize(0, None, 0)),
        (parse_unix("15 8 * * *"), ScheduledSize(1, None, None)),
    ]
    hours = instance_hours_per_month(actions, min_size=1, max_size=2, desired=1)
    assert hours == pytest.approx(11.75 * 365 / 12, rel=1e-12)
    # Two entries at the same minute: the later one in the list applies last.
    tie = [
        (parse_unix("0 8 * * *"), ScheduledSize(2, None, None)),
        (parse_unix("0 8 * * *"), ScheduledSize(1, None, None)),
    ]
    assert instance_hours_per_month(tie, min_size=1, max_size=2, desired=1) == pytest.approx(730)


def test_the_options_are_keyword_only_and_a_size_is_frozen() -> None:
    with pytest.raises(TypeError):
        instance_hours_per_month([], 1, 2, 1)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ScheduledSize(1, 2, 1).min_size = 3  # type: ignore[misc]
