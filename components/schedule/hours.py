"""Running hours a month under a schedule, for the cost outputs.

The schedule is played over a whole reference year (2027, with the year before it to
know the state on January 1st) in the schedule's own wall-clock time, minute by minute of
the firing times, and the year's total is divided by 12. Daylight-saving shifts are not
modelled: a stop at 20:00 local is 20:00 every day, which is what the services do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from components.schedule.cron import Cron

REFERENCE_YEAR = 2027


def _firings(cron: Cron, year: int) -> list[dt.datetime]:
    out: list[dt.datetime] = []
    day = dt.date(year, 1, 1)
    times = cron.times()
    while day.year == year:
        if cron.fires_on(day):
            out.extend(dt.datetime.combine(day, t) for t in times)
        day += dt.timedelta(days=1)
    return out


def _events(actions: Sequence[tuple[Cron, object]]) -> list[tuple[dt.datetime, int, object]]:
    events = [
        (when, order, value)
        for order, (cron, value) in enumerate(actions)
        for year in (REFERENCE_YEAR - 1, REFERENCE_YEAR)
        for when in _firings(cron, year)
    ]
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def _integrate(
    events: Iterable[tuple[dt.datetime, int, object]],
    initial: float,
    level: object,
) -> float:
    """Hours x level over the reference year; ``level`` maps (value, previous) -> level."""
    start = dt.datetime(REFERENCE_YEAR, 1, 1)
    end = dt.datetime(REFERENCE_YEAR + 1, 1, 1)
    current = initial
    at = start
    total = 0.0
    for when, _order, value in events:
        if when < start:
            current = level(value, current)  # type: ignore[operator]
            continue
        total += (when - at).total_seconds() / 3600 * current
        at = when
        current = level(value, current)  # type: ignore[operator]
    total += (end - at).total_seconds() / 3600 * current
    return total


def running_hours_per_month(stop: Cron, start: Cron) -> float:
    """Hours a month a single VM runs when ``stop`` stops it and ``start`` starts it.

    At a minute where both fire, the start wins (it is listed last)."""
    events = _events([(stop, 0.0), (start, 1.0)])
    return _integrate(events, 1.0, lambda value, _previous: value) / 12


@dataclass(frozen=True)
class ScheduledSize:
    """One Auto Scaling scheduled action: any of the three may be left unchanged (None)."""

    min_size: int | None
    max_size: int | None
    desired_size: int | None


def instance_hours_per_month(
    actions: Sequence[tuple[Cron, ScheduledSize]], *, min_size: int, max_size: int, desired: int
) -> float:
    """Instance-hours a month of a group that sits at its minimum (no load) under
    ``actions``; the group starts at ``desired`` within ``min_size`` and ``max_size``."""
    bounds = {"min": min_size, "max": max_size}

    def level(action: ScheduledSize, previous: float) -> float:
        if action.min_size is not None:
            bounds["min"] = action.min_size
        if action.max_size is not None:
            bounds["max"] = action.max_size
        # Without load, target tracking scales in to the minimum.
        wanted = action.desired_size if action.desired_size is not None else bounds["min"]
        return float(min(max(wanted, bounds["min"]), bounds["max"]))

    events = _events(actions)
    return _integrate(events, float(desired), level) / 12
