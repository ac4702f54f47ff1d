"""Durations (`30s`, `5m`, `1h30m`, `1d`) and timestamps (epoch or RFC 3339)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final

# One spelling of durations, shared by the parser and the JSON Schema (`correlator schema`):
# a plain number of seconds (`30`, `0.5`) or units (`1h30m`, `500ms`).
_SECONDS_TEXT = r"\d+(?:\.\d+)?"
_UNITS_TEXT = r"(?:\d+d)?(?:\d+h)?(?:\d+m(?!s))?(?:\d+s)?(?:\d+ms)?"
DURATION_PATTERN: Final = rf"^\s*(?=\d)(?:{_SECONDS_TEXT}|{_UNITS_TEXT})\s*$"
_SECONDS = re.compile(rf"^{_SECONDS_TEXT}$")
_UNIT_PARTS = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_UNITS = (86400.0, 3600.0, 60.0, 1.0, 0.001)
# Epoch seconds from 1970 up to the end of year 9999 (what dates can be written for).
MAX_TIMESTAMP: Final = 253_402_300_800.0


def parse_duration(value: object) -> float:
    """Seconds from `30s`, `5m`, `2h`, `1d`, combinations (`1h30m`) or a number of seconds.

    The one parser of durations: rule files, test files and command-line flags
    (`--max-lateness 30`, `--until +30`) all go through it, so `30`, `"30"`
    and `30s` mean the same everywhere.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if not 0 <= value < math.inf:
            raise ValueError(f"a duration must be a finite number of seconds ≥ 0, not {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"not a duration: {value!r}")
    return _parse_text(value)


@lru_cache(maxsize=256)
def _parse_text(value: str) -> float:
    """Events repeat a few spellings (`expire_after: 60s`): each is parsed once."""
    text = value.strip()
    if _SECONDS.match(text):
        return float(text)
    match = _UNIT_PARTS.match(text)
    if match is None or not any(match.groups()):
        if text.startswith("-"):
            raise ValueError(f"a duration cannot be negative: {value!r}")
        raise ValueError(f"not a duration: {value!r} (use e.g. 30s, 5m, 2h, 1d, or seconds)")
    return sum(float(n) * unit for n, unit in zip(match.groups(), _UNITS, strict=True) if n)


@lru_cache(maxsize=256)
def format_duration(seconds: float) -> str:
    """The shortest `1h30m`-style spelling, for messages and journals (a few values recur)."""
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{seconds:g}s"
    parts = []
    for unit, name in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        count, whole = divmod(whole, unit)
        if count:
            parts.append(f"{count}{name}")
    return "".join(parts)


def check_timestamp(at: float, value: object) -> float:
    """`at` if it is a time between 1970 and 9999; epoch milliseconds are the usual mistake."""
    if 0.0 <= at < MAX_TIMESTAMP:
        return at
    hint = (
        " (epoch milliseconds? use seconds)" if MAX_TIMESTAMP <= at < MAX_TIMESTAMP * 1000 else ""
    )
    raise ValueError(f"not a timestamp between 1970 and 9999: {value!r}{hint}")


def parse_timestamp(value: object) -> float:
    """Epoch seconds from a number or an RFC 3339 string (naive times are UTC)."""
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        return check_timestamp(float(value), value)
    if isinstance(value, str):
        return _parse_text_timestamp(value)
    if isinstance(value, datetime):
        return _from_datetime(value, value)
    raise ValueError(f"not a timestamp: {value!r}")


@lru_cache(maxsize=4096)
def _parse_text_timestamp(value: str) -> float:
    """Sources repeat stamps (Prometheus re-sends one `startsAt` per alert): parsed once each."""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        return check_timestamp(number, value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a timestamp: {value!r} (epoch seconds or RFC 3339)") from None
    return _from_datetime(moment, value)


def _from_datetime(moment: datetime, value: object) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return check_timestamp(moment.timestamp(), value)
