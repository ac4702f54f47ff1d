"""Canonical fields → an Alert occurrence, with the checks of DESIGN.md §3.

Anything that cannot become an alert raises InvalidEvent with a reason a human
can act on; the caller dead-letters the event.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cache
from operator import attrgetter
from typing import Any, Final

from correlator.errors import InvalidEvent
from correlator.model import (
    PROBLEM,
    SEVERITY_OF_NAME,
    TYPES,
    Alert,
    parse_severity,
)
from correlator.ruleset.paths import ALERT_FIELDS
from correlator.timeparse import MAX_TIMESTAMP, parse_duration, parse_timestamp

INDETERMINATE = 1


def text_field(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"field {name!r} must be a string, not {type(value).__name__}")
    return str(value)


# `ONLYONLY_STR.issuperset(map(type, values))`: all are exact strings, in one C-level pass
ONLY_STR: Final = frozenset((str,))


def string_map(value: Any, name: str) -> dict[str, str]:
    """A copy of labels or annotations as strings (numbers and booleans converted)."""
    if (
        type(value) is dict
        and ONLY_STR.issuperset(map(type, value.values()))
        and ONLY_STR.issuperset(map(type, value))
    ):
        return dict(value)  # the usual map: copied at C speed
    if value is None or value == "":  # empty means not set, as for every field
        return {}
    if not isinstance(value, dict):
        raise InvalidEvent(f"field {name!r} must be a map, not {type(value).__name__}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if type(item) is str and type(key) is str:
            out[key] = item
        elif isinstance(item, str):
            out[str(key)] = item
        elif isinstance(item, bool):
            out[str(key)] = "true" if item else "false"
        elif isinstance(item, int | float):
            out[str(key)] = str(item)
        elif item is not None:
            raise InvalidEvent(f"{name}.{key} must be a string, not {type(item).__name__}")
    return out


def _part(name: str) -> Callable[[Alert], str]:
    if name.startswith("labels."):
        key = name[7:]
        return lambda alert: alert.labels.get(key, "")
    if name.startswith("annotations."):
        key = name[12:]
        return lambda alert: alert.annotations.get(key, "")
    if name in ALERT_FIELDS:
        get = attrgetter(name)
        return lambda alert: _text(get(alert))
    return lambda alert: alert.labels.get(name, "")


def _text(value: Any) -> str:
    return value if type(value) is str else ("" if value is None else str(value))


_TEXT_FIELDS = frozenset(
    ("identifier", "node", "manager", "agent", "alertgroup", "alertkey", "type")
)


@cache
def identifier_function(fields: tuple[str, ...]) -> Callable[[Alert], str]:
    """The dedup key builder for a list of fields: their values joined by `:`."""
    if len(fields) > 1 and _TEXT_FIELDS.issuperset(fields):
        get_all = attrgetter(*fields)  # one C call for fields that are always strings
        return lambda alert: ":".join(get_all(alert))
    parts = tuple(_part(name) for name in fields)
    return lambda alert: ":".join([part(alert) for part in parts])


def _missing(fields: Mapping[str, Any], name: str) -> InvalidEvent:
    """The reason for a required field that is absent, or given (or rendered) empty."""
    if fields.get(name) is None:
        return InvalidEvent(f"missing required field {name!r}")
    return InvalidEvent(f"required field {name!r} is empty")


def _severity(value: Any) -> int:
    """Severity off the fast path: empty or null means not set (indeterminate)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return INDETERMINATE
    try:
        return parse_severity(value)
    except ValueError as exc:
        raise InvalidEvent(f"field 'severity': {exc}") from None


def _type(value: Any) -> str:
    """Type off the fast path: blank means not set (problem); surrounding spaces are ignored."""
    kind = (value.strip() or PROBLEM) if isinstance(value, str) else None
    if kind not in TYPES:  # None too: a number, a list or a map is never a type
        raise InvalidEvent(f"field 'type' must be problem, resolution or info, not {value!r}")
    return kind


def build_alert(
    fields: Mapping[str, Any],
    labels: dict[str, str],
    annotations: dict[str, str],
    now: float,
    identify: Callable[[Alert], str] | None = None,
    expire_after: float | None = None,
) -> Alert:
    """Validate canonical fields and make the occurrence; raise InvalidEvent if unusable."""
    node = fields.get("node")
    if type(node) is not str:
        node = text_field(fields, "node")
    alertgroup = fields.get("alertgroup")
    if type(alertgroup) is not str or not alertgroup:
        alertgroup = text_field(fields, "alertgroup") or text_field(fields, "alertname")
    if not node:
        raise _missing(fields, "node")
    if not alertgroup:
        raise _missing(fields, "alertgroup")
    raw_severity = fields.get("severity")
    severity = SEVERITY_OF_NAME.get(raw_severity) if type(raw_severity) is str else None
    if severity is None:
        if type(raw_severity) is int and 0 <= raw_severity <= 5:
            severity = raw_severity  # a level, as the Alertmanager mapping gives it
        else:
            severity = _severity(raw_severity)
    kind = fields.get("type") or PROBLEM
    if type(kind) is not str or kind not in TYPES:  # a list or a map cannot be looked up
        kind = _type(kind)
    timestamp = fields.get("timestamp")
    if type(timestamp) is float and 0.0 <= timestamp < MAX_TIMESTAMP:  # NaN fails too
        at = timestamp
    elif timestamp is None or timestamp == "":
        at = now
    else:
        try:
            at = parse_timestamp(timestamp)
        except ValueError as exc:
            raise InvalidEvent(f"field 'timestamp': {exc}") from None
    raw_expiry = fields.get("expire_after")
    if type(raw_expiry) is float and 0.0 <= raw_expiry < math.inf and expire_after is None:
        expire_after = raw_expiry  # seconds, as the Alertmanager mapping gives it
    elif raw_expiry is not None and raw_expiry != "" and expire_after is None:
        try:
            expire_after = parse_duration(raw_expiry)
        except ValueError as exc:
            raise InvalidEvent(f"field 'expire_after': {exc}") from None
    # the four optional strings, unrolled (a loop costs ~3 % of the engine's time):
    # one dict lookup each when they are strings or absent
    summary = fields.get("summary", "")
    if type(summary) is not str:
        summary = text_field(fields, "summary")
    alertkey = fields.get("alertkey", "")
    if type(alertkey) is not str:
        alertkey = text_field(fields, "alertkey")
    manager = fields.get("manager", "")
    if type(manager) is not str:
        manager = text_field(fields, "manager")
    agent = fields.get("agent", "")
    if type(agent) is not str:
        agent = text_field(fields, "agent")
    identifier: Any = ""  # with a rule's `identifier:` fields: read from the alert below
    if identify is None:
        identifier = fields.get("identifier")
        if identifier is None or identifier == "":  # DESIGN.md §3's default
            identifier = f"{node}:{alertgroup}:{alertkey}:{manager}"
        elif type(identifier) is not str:
            raise InvalidEvent("field 'identifier' must be a string")
    # positional: keyword arguments cost this per-event constructor about twice as much
    alert = Alert(
        identifier,
        node,
        alertgroup,
        severity,
        kind,  # type
        summary or f"{alertgroup} on {node}",
        alertkey,
        manager,
        agent,
        labels,
        annotations,
        0.0,  # first_occurrence: the table sets it
        at,  # last_occurrence
    )
    if expire_after is not None:
        alert.expire_after = expire_after
    if identify is not None:
        alert.identifier = identify(alert)
    return alert
