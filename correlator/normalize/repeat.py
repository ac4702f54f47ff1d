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
from functools import lru_cache
from typing import Any

from correlator.model import CLEARED, PROBLEM, SEVERITY_OF_NAME, Alert
from correlator.normalize.build import INDETERMINATE, ONLY_STR
from correlator.timeparse import MAX_TIMESTAMP, parse_duration


def repeat_of(
    raw: dict[str, Any], rows: Mapping[str, Alert], now: float, oldest: float
) -> tuple[Alert, float, float | None, dict[str, str] | None] | None:
    """The open row `raw` repeats, the event's time, its `expire_after` (None: it sets
    none) and the annotations to merge (None: none differ), if folding it changes
    nothing else.

    A new `expire_after` and new annotation texts are taken (the full path's fold
    sets them and changes nothing else with them): Prometheus moves an alert's
    `endsAt` on every re-send, and many sources stamp a note on every event.
    `oldest`: the earliest event time the engine still takes (older is dead-lettered).
    """
    get = raw.get
    node = get("node")
    alertgroup = get("alertgroup")
    alertkey = get("alertkey", "")
    manager = get("manager", "")
    if type(node) is not str or type(alertgroup) is not str:
        return None
    if type(alertkey) is not str or type(manager) is not str:
        return None
    identifier = get("identifier")
    if identifier is None or identifier == "":  # DESIGN.md §3's default, as build_alert makes it
        identifier = f"{node}:{alertgroup}:{alertkey}:{manager}"
    elif type(identifier) is not str:
        return None
    row = rows.get(identifier)
    if row is None or row.status == CLEARED or row.pinned is not None:
        return None
    at = get("timestamp")
    if type(at) is not float or not 0.0 <= at < MAX_TIMESTAMP:  # NaN too
        at = _time(at, now)
        if at is None:
            return None
    if at < row.last_occurrence or at < oldest:
        return None
    severity = get("severity")
    if type(severity) is str:
        severity = SEVERITY_OF_NAME.get(severity)
    elif severity is None:
        severity = INDETERMINATE
    elif type(severity) is not int:  # outside 0-5 it equals no row's severity
        return None
    if (
        row.severity != severity
        or row.node != node
        or row.alertgroup != alertgroup
        or row.alertkey != alertkey
        or row.manager != manager
        or row.agent != get("agent", "")
        or row.type != (get("type") or PROBLEM)
    ):
        return None
    summary = get("summary", "")
    if type(summary) is not str or (summary or f"{alertgroup} on {node}") != row.summary:
        return None
    labels = get("labels")
    if labels is not None and (  # the usual repeat carries the row's very labels: one `==`
        type(labels) is not dict
        or (labels != row.labels and not labels.items() <= row.labels.items())
    ):
        return None
    notes = get("annotations")
    merge = None  # annotations the fold sets (a per-event note, such as when it was sent)
    if notes is not None:
        if type(notes) is not dict:
            return None
        if not notes.items() <= row.annotations.items():
            if not (
                ONLY_STR.issuperset(map(type, notes.values()))
                and ONLY_STR.issuperset(map(type, notes))
            ):
                return None  # values to convert or drop: the full path's `string_map`
            merge = notes
    expiry = get("expire_after")
    if expiry is None or expiry == "":
        return row, at, None, merge
    seconds = _duration_text(expiry) if type(expiry) is str else _duration(expiry)
    if seconds is None:  # not a duration: the full path dead-letters it
        return None
    return row, at, seconds, merge


def occurrence_of(raw: dict[str, Any], row: Alert, at: float) -> Alert:
    """The occurrence `build_alert` makes of a repeat that `repeat_of` found (row's fields)."""
    labels = raw.get("labels")
    notes = raw.get("annotations")
    occ = Alert(
        row.identifier,
        row.node,
        row.alertgroup,
        row.severity,
        row.type,
        row.summary,
        row.alertkey,
        row.manager,
        row.agent,
        dict(labels) if labels else {},  # the row's values: strings
        dict(notes) if notes else {},
        0.0,  # first_occurrence: the table sets it
        at,  # last_occurrence
    )
    expiry = raw.get("expire_after")
    if expiry is not None and expiry != "":
        occ.expire_after = row.expire_after
    return occ


def _time(value: Any, now: float) -> float | None:
    """An event time `build_alert` takes as it is (`now` when unset); None: it decides."""
    if type(value) is int and 0 <= value < MAX_TIMESTAMP:
        return float(value)
    if value is None or value == "":
        return now
    return None


@lru_cache(maxsize=256)
def _duration_text(value: str) -> float | None:
    """Events repeat a few spellings (`expire_after: 1h`): one C-level lookup each."""
    return _duration(value)


def _duration(value: Any) -> float | None:
    try:
        return parse_duration(value)
    except ValueError:
        return None
