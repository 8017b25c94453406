"""Cron expressions as EventBridge Scheduler and EC2 Auto Scaling take them, parsed to sets.

Two dialects, with the rules of each service's documentation:

- **EventBridge Scheduler** ``cron(minutes hours day-of-month month day-of-week year)``
  ("Schedule types on EventBridge Scheduler", cron-based schedules): six fields; exactly
  one of day-of-month and day-of-week is ``?``; day-of-week 1-7 is SUN-SAT; names JAN-DEC
  and SUN-SAT; ``*``, ``,``, ``-`` and ``/``. ``L``, ``W`` and ``#`` are refused here (the
  service takes them; this package cannot count the running hours they give).
- **Auto Scaling** ``recurrence`` is Unix cron, five fields (``minute hour day-of-month
  month day-of-week``), day-of-week 0-7 with 0 and 7 Sunday; when both day fields are
  restricted a day matching either fires (Vixie cron's rule).

:func:`parse_eventbridge` and :func:`parse_unix` raise ``ValueError`` naming the field.
:meth:`Cron.fires_on` and :meth:`Cron.times` give the firing times, for
:mod:`components.schedule.hours`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_EVENTBRIDGE = re.compile(r"^cron\((.*)\)$")


@dataclass(frozen=True)
class Cron:
    """The sets a cron expression fires on. ``weekdays`` use Python's ``isoweekday() % 7``:
    0 is Sunday. ``None`` for a day field means unrestricted."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None
    months: frozenset[int]
    weekdays: frozenset[int] | None
    years: frozenset[int] | None = None
    either_day: bool = False
    """Unix cron with both day fields restricted: a day that matches either fires."""

    def fires_on(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        if self.years is not None and day.year not in self.years:
            return False
        in_month = self.days is None or day.day in self.days
        in_week = self.weekdays is None or day.isoweekday() % 7 in self.weekdays
        if self.either_day:
            return in_month or in_week
        return in_month and in_week

    def times(self) -> list[dt.time]:
        return [dt.time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]


def _value(text: str, names: dict[str, int], field: str) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise ValueError(f"{field}: {text!r} is neither a number nor a name")
    return int(text)


def _field(
    text: str, field: str, low: int, high: int, names: dict[str, int] | None = None
) -> frozenset[int]:
    names = names or {}
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValueError(f"{field}: an empty item in {text!r}")
        for token in re.split(r"[-/]", part):
            word = token.upper()
            if word not in names and token != "*" and any(c in word for c in "LW#"):
                raise ValueError(
                    f"{field}: {part!r} uses L, W or #, which this package cannot count "
                    "running hours for"
                )
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"{field}: step {step_text!r} must be a whole number >= 1")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, names, field), _value(b, names, field)
        else:
            first = _value(base, names, field)
            last = high if step_text else first
        for value in (first, last):
            if not low <= value <= high:
                raise ValueError(f"{field}: {value} is outside {low}-{high}")
        if first > last:
            raise ValueError(f"{field}: the range {base!r} runs backwards")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse_eventbridge(expression: str) -> Cron:
    """An EventBridge Scheduler ``cron(...)`` expression."""
    match = _EVENTBRIDGE.match(expression.strip())
    if match is None:
        raise ValueError(
            f"{expression!r} is not a cron(...) expression, e.g. 'cron(0 20 ? * MON-FRI *)'"
        )
    fields = match.group(1).split()
    if len(fields) != 6:
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; EventBridge Scheduler takes six: "
            "minutes hours day-of-month month day-of-week year"
        )
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ValueError(f"{expression!r}: exactly one of day-of-month and day-of-week must be '?'")
    weekdays = None
    if dow != "?":
        # EventBridge numbers Sunday 1 to Saturday 7; names as everywhere.
        names = {d: i + 1 for d, i in _DAYS.items()}
        weekdays = frozenset(v - 1 for v in _field(dow, "day-of-week", 1, 7, names))
        if dow == "*":
            weekdays = None
    return Cron(
        minutes=_field(minute, "minutes", 0, 59),
        hours=_field(hour, "hours", 0, 23),
        days=None if dom in ("?", "*") else _field(dom, "day-of-month", 1, 31),
        months=_field(month, "month", 1, 12, _MONTHS),
        weekdays=weekdays,
        years=None if year == "*" else _field(year, "year", 1970, 2199),
    )


def parse_unix(expression: str) -> Cron:
    """A five-field Unix cron expression (an Auto Scaling scheduled action's recurrence)."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"{expression!r} has {len(fields)} fields; a recurrence takes five: "
            "minute hour day-of-month month day-of-week"
        )
    minute, hour, dom, month, dow = fields
    if "?" in expression:
        raise ValueError(f"{expression!r}: '?' is EventBridge's, not Unix cron's; use '*'")
    weekdays = None if dow == "*" else frozenset(
        v % 7 for v in _field(dow, "day-of-week", 0, 7, _DAYS)
    )  # fmt: skip
    days = None if dom == "*" else _field(dom, "day-of-month", 1, 31)
    return Cron(
        minutes=_field(minute, "minute", 0, 59),
        hours=_field(hour, "hour", 0, 23),
        days=days,
        months=_field(month, "month", 1, 12, _MONTHS),
        weekdays=weekdays,
        either_day=days is not None and weekdays is not None,
    )
