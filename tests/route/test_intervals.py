"""Alertmanager's `time_intervals`: each field, ranges, negative days, time zones."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from correlator.route.intervals import TimeIntervals, TimeIntervalSpec


def active(entry: dict[str, Any], when: str) -> bool:
    spec = TimeIntervalSpec.model_validate({"name": "x", "time_intervals": [entry]})
    at = datetime.fromisoformat(when).replace(tzinfo=UTC).timestamp()
    return TimeIntervals([spec]).active("x", at)


@pytest.mark.parametrize(
    ("entry", "when", "expected"),
    [
        ({"times": [{"start_time": "09:00", "end_time": "17:00"}]}, "2026-03-10T09:00", True),
        ({"times": [{"start_time": "09:00", "end_time": "17:00"}]}, "2026-03-10T17:00", False),
        ({"times": [{"start_time": "22:00", "end_time": "24:00"}]}, "2026-03-10T23:59", True),
        ({"weekdays": ["monday:friday"]}, "2026-03-10T12:00", True),  # a Tuesday
        ({"weekdays": ["saturday", "sunday"]}, "2026-03-10T12:00", False),
        ({"days_of_month": ["-1"]}, "2026-02-28T12:00", True),  # the last day of February
        ({"days_of_month": ["-3:-1"]}, "2026-03-28T12:00", False),
        ({"days_of_month": ["1:-1"]}, "2026-03-28T12:00", True),
        ({"days_of_month": ["1:7"], "weekdays": ["monday"]}, "2026-03-02T12:00", True),
        ({"months": ["january:march"]}, "2026-03-10T12:00", True),
        ({"months": ["4", "december"]}, "2026-03-10T12:00", False),
        ({"years": ["2025:2026"]}, "2026-03-10T12:00", True),
        ({"years": ["2027"]}, "2026-03-10T12:00", False),
        # 08:30 UTC is 09:30 in Zurich (CET) and 04:30 in New York (EDT from 8 March)
        (
            {"times": [{"start_time": "09:00", "end_time": "10:00"}], "location": "Europe/Zurich"},
            "2026-03-10T08:30",
            True,
        ),
        (
            {
                "times": [{"start_time": "09:00", "end_time": "10:00"}],
                "location": "America/New_York",
            },
            "2026-03-10T08:30",
            False,
        ),
        ({}, "2026-03-10T08:30", True),
    ],
)
def test_entries(entry: dict[str, Any], when: str, expected: bool) -> None:
    assert active(entry, when) is expected


@pytest.mark.parametrize(
    "entry",
    [
        {"times": [{"start_time": "9", "end_time": "10:00"}]},
        {"times": [{"start_time": "09:00", "end_time": "24:01"}]},
        {"weekdays": ["funday"]},
        {"days_of_month": ["0"]},
        {"days_of_month": ["5:1"]},
        {"months": ["13"]},
        {"location": "Mars/Olympus"},
    ],
)
def test_bad_entries_are_refused(entry: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TimeIntervalSpec.model_validate({"name": "x", "time_intervals": [entry]})
