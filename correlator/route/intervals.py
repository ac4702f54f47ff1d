"""Alertmanager's `time_intervals`: named sets of times when a route is muted or active.

An interval entry holds when every field it gives holds (a missing field
holds always): `times` (`HH:MM` start inclusive, end exclusive, up to
`24:00`), `weekdays` (`monday:friday`), `days_of_month` (`1:7`, negative from
the month's end: `-1` is its last day), `months` (`1:3`, `january:march`),
`years` (`2026:2027`), read in `location` (UTC by default). A named interval
is active when any of its entries holds. Ranges are inclusive, as in
Alertmanager.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from pydantic import ValidationInfo, field_validator

from correlator.ruleset.schema import Strict, ZoneName

_WEEKDAYS: Final = {name.lower(): i for i, name in enumerate(calendar.day_name)}  # monday 0
_MONTHS: Final = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_BOUNDS: Final[dict[str, tuple[dict[str, int], int, int]]] = {
    "weekdays": (_WEEKDAYS, 0, 6),
    "months": (_MONTHS, 1, 12),
    "years": ({}, 1, 9999),
}


class TimeRange(Strict):
    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        _minutes(value)
        return value


class IntervalSpec(Strict):
    """One entry of a named interval."""

    times: list[TimeRange] = []
    weekdays: list[str] = []
    days_of_month: list[str] = []
    months: list[str] = []
    years: list[str] = []
    location: ZoneName = "UTC"

    @field_validator("weekdays", "months", "years")
    @classmethod
    def _ranges(cls, value: list[str], info: ValidationInfo) -> list[str]:
        names, low, high = _BOUNDS[str(info.field_name)]
        for text in value:
            _range(text, names, low, high)
        return value

    @field_validator("days_of_month")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        for text in value:
            days = _range(text, {}, -31, 31)
            if 0 in (days[0], days[-1]):
                raise ValueError("days of the month count from 1 (or back from -1)")
        return value


class TimeIntervalSpec(Strict):
    name: str
    time_intervals: list[IntervalSpec] = []


class Interval:
    """A compiled entry: which minutes, weekdays, days, months and years it holds on."""

    def __init__(self, spec: IntervalSpec) -> None:
        self._zone = ZoneInfo(spec.location)
        self._times = [(_minutes(t.start_time), _minutes(t.end_time)) for t in spec.times]
        self._weekdays = _ranges(spec.weekdays, _WEEKDAYS, 0, 6)
        self._days = [(r[0], r[-1]) for r in (_range(t, {}, -31, 31) for t in spec.days_of_month)]
        self._months = _ranges(spec.months, _MONTHS, 1, 12)
        self._years = _ranges(spec.years, {}, 1, 9999)

    def holds(self, at: float) -> bool:
        local = datetime.fromtimestamp(at, self._zone)
        minute = local.hour * 60 + local.minute
        if self._times and not any(start <= minute < end for start, end in self._times):
            return False
        if self._weekdays and local.weekday() not in self._weekdays:
            return False
        if self._days and not self._in_days(local):
            return False
        if self._months and local.month not in self._months:
            return False
        return not self._years or local.year in self._years

    def _in_days(self, local: datetime) -> bool:
        last = calendar.monthrange(local.year, local.month)[1]
        for start, end in self._days:
            first = start if start > 0 else last + start + 1
            final = end if end > 0 else last + end + 1
            if first <= local.day <= final:
                return True
        return False


class TimeIntervals:
    """Named intervals, compiled once per load."""

    def __init__(self, specs: Sequence[TimeIntervalSpec]) -> None:
        self._named = {s.name: [Interval(entry) for entry in s.time_intervals] for s in specs}

    def active(self, name: str, at: float) -> bool:
        return any(entry.holds(at) for entry in self._named.get(name, ()))


def _minutes(text: str) -> int:
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"time must be HH:MM, not {text!r}")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > 24 * 60:
        raise ValueError(f"time {text!r} is outside 00:00-24:00")
    return value


def _bound(text: str, names: dict[str, int]) -> int:
    text = text.strip().lower()
    if text in names:
        return names[text]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither a name nor a number") from None


def _range(text: str, names: dict[str, int], low: int, high: int) -> range:
    """`a:b` or `a`, inclusive, within [low, high]; the numbers it covers."""
    first_text, sep, last_text = text.partition(":")
    first = _bound(first_text, names)
    last = _bound(last_text, names) if sep else first
    for value in (first, last):
        if not low <= value <= high:
            raise ValueError(f"{value} in {text!r} is outside {low}..{high}")
    if (first < 0) == (last < 0) and last < first:
        raise ValueError(f"range {text!r} ends before it starts")
    return range(first, last + 1) if first <= last else range(first, last - 1, -1)


def _ranges(texts: list[str], names: dict[str, int], low: int, high: int) -> frozenset[int]:
    return frozenset(v for text in texts for v in _range(text, names, low, high))
