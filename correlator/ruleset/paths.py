"""Field lookup by name, for raw events (dicts) and for alert rows.

A name in a rule is resolved once, at compile time, into a getter function, so
the hot path never parses dotted names.

- raw mode (normalize): `raw.host` or `host` is a key of the raw event; dots
  reach into nested maps.
- alert mode (correlate): a bare name is an alert field, else `alertname`
  (= alertgroup), else a label; `labels.x` and `annotations.x` reach into maps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter
from typing import Any, Final

from correlator.model import Alert

Getter = Callable[[Any], Any]

ALERT_FIELDS: Final = frozenset(
    (
        "identifier", "serial", "node", "manager", "agent", "alertgroup", "alertkey",
        "severity", "type", "summary", "first_occurrence", "last_occurrence",
        "state_change", "tally", "status", "owner", "suppressed_by", "parent",
        "incident", "expire_at",
    )
)  # fmt: skip


def raw_getter(name: str) -> Getter:
    """Getter over a raw event dict; missing keys give None."""
    parts = name.split(".")
    if parts[0] == "raw" and len(parts) > 1:
        parts = parts[1:]
    if len(parts) == 1:
        key = parts[0]
        return lambda raw: raw.get(key)

    def nested(raw: Any) -> Any:
        value = raw
        for part in parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return nested


def alert_getter(name: str) -> Getter:
    """Getter over an Alert row; unknown names fall back to labels (missing = None)."""
    if name in ALERT_FIELDS:
        return attrgetter(name)
    if name == "alertname":
        return lambda alert: alert.labels.get("alertname") or alert.alertgroup
    head, _, rest = name.partition(".")
    if head in ("labels", "annotations") and rest:
        if head == "labels":
            return lambda alert: alert.labels.get(rest)
        return lambda alert: alert.annotations.get(rest)
    return lambda alert: alert.labels.get(name)


def fields_read(names: Iterable[str]) -> frozenset[str]:
    """The alert fields `alert_getter`s of `names` read (`labels` for any label)."""
    read: set[str] = set()
    for name in names:
        head, _, rest = name.partition(".")
        if name in ALERT_FIELDS:
            read.add(name)
        elif name == "alertname":
            read.update(("labels", "alertgroup"))
        elif head == "annotations" and rest:
            read.add(head)
        else:
            read.add("labels")
    return frozenset(read)


_FIELD_NAMES: Final = tuple(ALERT_FIELDS)
_read_fields: Final = attrgetter(*_FIELD_NAMES)  # every field in one C call


def alert_context(alert: Alert) -> dict[str, Any]:
    """The alert as a plain mapping, for CEL expressions and Jinja2 templates."""
    ctx: dict[str, Any] = dict(zip(_FIELD_NAMES, _read_fields(alert), strict=True))
    ctx["labels"] = alert.labels
    ctx["annotations"] = alert.annotations
    ctx["alertname"] = alert.labels.get("alertname") or alert.alertgroup
    return ctx


def alert_context_value(alert: Alert, name: str) -> Any:
    """`alert_context(alert)[name]` without building the mapping (KeyError likewise)."""
    if name in ALERT_FIELDS:
        return getattr(alert, name)
    if name == "labels":
        return alert.labels
    if name == "annotations":
        return alert.annotations
    if name == "alertname":
        return alert.labels.get("alertname") or alert.alertgroup
    raise KeyError(name)


def last_segment(name: str) -> str:
    """`labels.site` → `site`: the short key a group value is also known by."""
    return name.rsplit(".", 1)[-1]
