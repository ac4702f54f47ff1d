"""The repeat fast path's test: does a raw event carry exactly what its open row has?

Most events are repeats of an open alert that no normalize rule touches and
that change nothing but the tally. Such an event can be recognised on the raw
dict, by the checks `build_alert` makes and `AlertTable._fold` compares,
without building an occurrence. Anything else (a value to convert, default or
validate, a field that differs, a late or cleared row) answers None, and the
full path decides: it gives the same result in every case this one takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from correlator.model import CLEARED, PROBLEM, SEVERITY_OF_NAME, Alert
from correlator.timeparse import MAX_TIMESTAMP, parse_duration

INDETERMINATE: Final = 1


def repeat_of(
    raw: dict[str, Any], rows: Mapping[str, Alert], now: float
) -> tuple[Alert, float] | None:
    """The open row `raw` repeats and the event's time, if folding it changes nothing else."""
    node = raw.get("node")
    alertgroup = raw.get("alertgroup")
    alertkey = raw.get("alertkey", "")
    manager = raw.get("manager", "")
    if type(node) is not str or type(alertgroup) is not str:
        return None
    if type(alertkey) is not str or type(manager) is not str:
        return None
    identifier = raw.get("identifier")
    if identifier is None or identifier == "":  # DESIGN.md §3's default, as build_alert makes it
        identifier = f"{node}:{alertgroup}:{alertkey}:{manager}"
    elif type(identifier) is not str:
        return None
    row = rows.get(identifier)
    if row is None or row.status == CLEARED or row.pinned is not None:
        return None
    at = _time(raw.get("timestamp"), now)
    if at is None or at < row.last_occurrence:
        return None
    if (
        row.node != node
        or row.alertgroup != alertgroup
        or row.alertkey != alertkey
        or row.manager != manager
        or row.agent != raw.get("agent", "")
        or row.type != (raw.get("type") or PROBLEM)
        or row.severity != _severity(raw.get("severity"))
    ):
        return None
    summary = raw.get("summary", "")
    if type(summary) is not str or (summary or f"{alertgroup} on {node}") != row.summary:
        return None
    labels = raw.get("labels")
    if labels is not None and (
        type(labels) is not dict or not labels.items() <= row.labels.items()
    ):
        return None
    notes = raw.get("annotations")
    if notes is not None and (
        type(notes) is not dict or not notes.items() <= row.annotations.items()
    ):
        return None
    expiry = raw.get("expire_after")
    if expiry is not None and expiry != "":
        seconds = _duration(expiry)
        if seconds is None or seconds != row.expire_after:
            return None
    return row, at


def _time(value: Any, now: float) -> float | None:
    """An event time `build_alert` takes as it is (or `now` when unset); None otherwise."""
    if type(value) is float and 0.0 <= value < MAX_TIMESTAMP:  # NaN fails too
        return value
    if type(value) is int and 0 <= value < MAX_TIMESTAMP:
        return float(value)
    if value is None or value == "":
        return now
    return None


def _severity(value: Any) -> int | None:
    """A severity spelt the usual way (a name, 0-5, unset); None for anything to check."""
    if type(value) is str:
        return SEVERITY_OF_NAME.get(value)
    if type(value) is int:
        return value  # outside 0-5 it equals no row's severity
    return INDETERMINATE if value is None else None


def _duration(value: Any) -> float | None:
    try:
        return parse_duration(value)
    except ValueError:
        return None
