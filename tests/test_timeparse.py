"""Durations and timestamps: one parser for rule files, test files and command-line flags."""

from __future__ import annotations

import re

import pytest

from correlator.timeparse import DURATION_PATTERN, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("0", 0.0),
        ("0.5", 0.5),
        (" 45 ", 45.0),
        ("30s", 30.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        ("1d", 86400.0),
        (30, 30.0),
        (0, 0.0),
        (2.5, 2.5),
    ],
)
def test_a_bare_number_is_seconds(text: object, seconds: float) -> None:
    """A number of seconds, written bare or as text, is a duration like `30s` (docs: "or a number of seconds")."""
    assert parse_duration(text) == seconds
    if isinstance(text, str):
        assert re.match(DURATION_PATTERN, text), "the JSON Schema pattern agrees with the parser"


@pytest.mark.parametrize("text", ["-5", "-5m", -1, -0.5])
def test_a_negative_duration_is_refused_clearly(text: object) -> None:
    """A negative duration is an error that says so, whatever its spelling."""
    with pytest.raises(ValueError, match=r"negative|≥ 0"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["", "m", "5 minutes", "1e3", "inf", "nan", "1.5h", True, None])
def test_other_spellings_are_not_durations(text: object) -> None:
    """Anything else is refused, and the schema pattern refuses the same texts."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
    if isinstance(text, str):
        assert not re.match(DURATION_PATTERN, text)
