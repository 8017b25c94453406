"""Both cron dialects: what each field takes, what each refuses, and when a day fires."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from components.schedule.cron import parse_eventbridge, parse_unix

MONDAY = dt.date(2027, 1, 4)
SATURDAY = dt.date(2027, 1, 9)
SUNDAY = dt.date(2027, 1, 10)


def test_eventbridge_weekdays_count_sunday_as_one_and_take_names() -> None:
    by_name = parse_eventbridge("cron(0 20 ? * MON-FRI *)")
    by_number = parse_eventbridge("cron(0 20 ? * 2-6 *)")
    assert by_name == by_number
    assert by_name.fires_on(MONDAY) and not by_name.fires_on(SATURDAY)
    sunday = parse_eventbridge("cron(0 20 ? * 1 *)")
    assert sunday.fires_on(SUNDAY) and not sunday.fires_on(MONDAY)
    assert by_name.times() == [dt.time(20, 0)]


def test_eventbridge_fields_steps_lists_months_and_years() -> None:
    cron = parse_eventbridge("cron(0/30 8,12 1-3 JAN,MAR ? 2027)")
    assert cron.minutes == {0, 30} and cron.hours == {8, 12}
    assert cron.fires_on(dt.date(2027, 1, 2)) and not cron.fires_on(dt.date(2027, 2, 2))
    assert not cron.fires_on(dt.date(2028, 1, 2))
    assert cron.times() == [dt.time(8, 0), dt.time(8, 30), dt.time(12, 0), dt.time(12, 30)]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("rate(1 hour)", "not a cron"),
        ("cron(0 20 ? * MON-FRI)", "has 5 fields; EventBridge Scheduler takes six"),
        ("cron(0 20 * * * *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 20 ? * ? *)", "exactly one of day-of-month and day-of-week must be '?'"),
        ("cron(0 24 ? * MON *)", "hours: 24 is outside 0-23"),
        ("cron(60 1 ? * MON *)", "minutes: 60 is outside 0-59"),
        ("cron(0 1 ? * 8 *)", "day-of-week: 8 is outside 1-7"),
        ("cron(0 1 ? * FRI-MON *)", "runs backwards"),
        ("cron(0 1 L * ? *)", "uses L, W or #"),
        ("cron(0 1 ? * 6#3 *)", "uses L, W or #"),
        ("cron(0 1 15W * ? *)", "uses L, W or #"),
        ("cron(0 1 ? * MOM *)", "neither a number nor a name"),
        ("cron(0/0 1 ? * MON *)", "step '0' must be a whole number >= 1"),
        ("cron(0,,1 1 ? * MON *)", "an empty item"),
    ],
)
def test_eventbridge_refusals_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("?", r"\?")):
        parse_eventbridge(expression)


def test_names_with_w_and_l_are_names_not_flags() -> None:
    cron = parse_eventbridge("cron(0 1 ? JUL-AUG WED *)")
    assert cron.months == {7, 8} and cron.weekdays == {3}


def test_unix_weekdays_count_sunday_as_zero_or_seven() -> None:
    assert parse_unix("0 20 * * 0").fires_on(SUNDAY)
    assert parse_unix("0 20 * * 7").fires_on(SUNDAY)
    assert parse_unix("0 20 * * 1-5").fires_on(MONDAY)
    assert not parse_unix("0 20 * * 1-5").fires_on(SATURDAY)
    assert parse_unix("0 20 * * SAT").fires_on(SATURDAY)


def test_unix_with_both_day_fields_fires_on_either() -> None:
    cron = parse_unix("0 8 1 * MON")
    assert cron.fires_on(dt.date(2027, 1, 1))  # a Friday, the 1st
    assert cron.fires_on(MONDAY)  # the 4th, a Monday
    assert not cron.fires_on(dt.date(2027, 1, 5))


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 20 * *", "has 4 fields; a recurrence takes five"),
        ("0 20 ? * 1", "'?' is EventBridge's"),
        ("0 20 * 13 1", "month: 13 is outside 1-12"),
        ("0 20 * * 8", "day-of-week: 8 is outside 0-7"),
    ],
)
def test_unix_refusals(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        parse_unix(expression)


MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]


@pytest.mark.parametrize(("number", "name"), list(enumerate(MONTHS, 1)))
def test_every_month_name_is_its_number(number: int, name: str) -> None:
    assert parse_eventbridge(f"cron(0 1 1 {name} ? *)").months == {number}
    assert parse_unix(f"0 1 1 {name.lower()} *").months == {number}


@pytest.mark.parametrize(("number", "name"), list(enumerate(DAYS)))
def test_every_day_name_is_its_number_in_both_dialects(number: int, name: str) -> None:
    assert parse_eventbridge(f"cron(0 1 ? * {name} *)").weekdays == {number}
    assert parse_eventbridge(f"cron(0 1 ? * {number + 1} *)").weekdays == {number}
    assert parse_unix(f"0 1 * * {name}").weekdays == {number}
    assert parse_unix(f"0 1 * * {number}").weekdays == {number}


def test_a_day_that_does_not_fire_is_false_and_times_come_in_order() -> None:
    weekdays = parse_eventbridge("cron(30,0 20,8 ? JAN MON-FRI *)")
    assert weekdays.fires_on(SATURDAY) is False
    assert weekdays.fires_on(dt.date(2027, 2, 1)) is False  # a Monday in February
    assert weekdays.times() == [dt.time(8, 0), dt.time(8, 30), dt.time(20, 0), dt.time(20, 30)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        weekdays.hours = frozenset()  # type: ignore[misc]


def test_unix_minutes_and_hours_and_one_restricted_day_field() -> None:
    cron = parse_unix("30 8 * * 1")
    assert cron.times() == [dt.time(8, 30)]
    assert not cron.fires_on(dt.date(2027, 1, 5))  # a Tuesday: '*' days do not widen it
    first = parse_unix("0 8 1 * *")
    assert first.fires_on(dt.date(2027, 1, 1)) and not first.fires_on(MONDAY)


@pytest.mark.parametrize(
    ("parse", "expression", "message"),
    [
        (parse_eventbridge, "cron(0 1 32 * ? *)", "day-of-month: 32 is outside 1-31"),
        (parse_eventbridge, "cron(0 1 ? 13 MON *)", "month: 13 is outside 1-12"),
        (parse_eventbridge, "cron(0 1 ? * MON 2200)", "year: 2200 is outside 1970-2199"),
        (parse_unix, "60 1 * * *", "minute: 60 is outside 0-59"),
        (parse_unix, "0 24 * * *", "hour: 24 is outside 0-23"),
        (parse_unix, "0 1 0 * *", "day-of-month: 0 is outside 1-31"),
    ],
)
def test_each_field_is_named_in_its_error(parse, expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        parse(expression)


def _eventbridge_with(position: int, value: str) -> str:
    fields = ["0", "1", "?", "*", "MON", "*"]
    if position == 2:
        fields[2], fields[4] = value, "?"
    else:
        fields[position] = value
    return f"cron({' '.join(fields)})"


def _unix_with(position: int, value: str) -> str:
    fields = ["0", "1", "*", "*", "*"]
    fields[position] = value
    return " ".join(fields)


BOUNDS = [
    (parse_eventbridge, _eventbridge_with, 0, 0, 59),
    (parse_eventbridge, _eventbridge_with, 1, 0, 23),
    (parse_eventbridge, _eventbridge_with, 2, 1, 31),
    (parse_eventbridge, _eventbridge_with, 3, 1, 12),
    (parse_eventbridge, _eventbridge_with, 4, 1, 7),
    (parse_eventbridge, _eventbridge_with, 5, 1970, 2199),
    (parse_unix, _unix_with, 0, 0, 59),
    (parse_unix, _unix_with, 1, 0, 23),
    (parse_unix, _unix_with, 2, 1, 31),
    (parse_unix, _unix_with, 3, 1, 12),
    (parse_unix, _unix_with, 4, 0, 7),
]


@pytest.mark.parametrize(("parse", "build", "position", "low", "high"), BOUNDS)
def test_both_sides_of_every_fields_range(parse, build, position, low, high) -> None:
    parse(build(position, str(low)))
    parse(build(position, str(high)))
    for outside in (low - 1, high + 1):
        if outside < 0:
            continue
        with pytest.raises(ValueError, match=f"{outside} is outside {low}-{high}"):
            parse(build(position, str(outside)))


def test_too_many_fields_are_counted_not_unpacked() -> None:
    with pytest.raises(ValueError, match="has 7 fields; EventBridge Scheduler takes six"):
        parse_eventbridge("cron(0 1 ? * MON * 1)")
    with pytest.raises(ValueError, match="has 6 fields; a recurrence takes five"):
        parse_unix("0 1 * * * 2027")


def test_a_step_of_one_is_every_value() -> None:
    assert parse_unix("*/1 1 * * *").minutes == frozenset(range(60))
    assert parse_unix("*/15 1 * * *").minutes == {0, 15, 30, 45}
    assert parse_unix("5/20 1 * * *").minutes == {5, 25, 45}


def test_times_are_sorted_whatever_order_the_sets_keep() -> None:
    cron = parse_unix("40,3 17,2 * * *")
    assert list(cron.hours) != sorted(cron.hours)  # a set's own order is not the clock's
    assert cron.times() == [dt.time(2, 3), dt.time(2, 40), dt.time(17, 3), dt.time(17, 40)]


def test_a_year_outside_the_expression_is_false() -> None:
    assert parse_eventbridge("cron(0 1 ? * MON 2028)").fires_on(MONDAY) is False
