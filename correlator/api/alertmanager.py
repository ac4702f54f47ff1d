"""Alertmanager's `POST /api/v2/alerts` body as Prometheus and amtool send it → raw events.

Each postable alert (`labels`, `annotations`, `startsAt`, `endsAt`,
`generatorURL`) becomes one event with the canonical fields set (DESIGN.md §6),
so it passes normalization unchanged unless a rule matches it:

- `alertgroup` = `labels.alertname`; `node` = `labels.instance`, else `node`,
  else `job`, else `prometheus`; `manager` = `prometheus`;
- `alertkey` = the whole label set, sorted (`alertname="X",instance="a:9100"`), so
  the identifier separates every alert Alertmanager keeps apart;
- `severity` from `labels.severity` when it names one (Prometheus's own words
  such as `page` keep the default and stay a label); `summary` from
  `annotations.summary`, else `annotations.description`;
- `startsAt` is the occurrence time; `endsAt` in the past makes it a
  resolution at that time, in the future the row's expiry (`expire_after`):
  an alert that stops being re-sent resolves itself, as with `resolve_timeout`.

Prometheus re-sends a firing alert with its original `startsAt`; one that
started longer ago than `max_lateness` is stamped with its arrival instead,
so a long-firing alert is deduplicated rather than dead-lettered as late.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from correlator.model import SEVERITY_OF_NAME, parse_severity
from correlator.normalize.build import ONLY_STR
from correlator.timeparse import parse_timestamp

# Go's zero time, which Alertmanager's clients send for "not set"
_ZERO_TIME_PREFIX = "0001-01-01"


class BadAlert(ValueError):
    """A postable alert that cannot be taken: the message is the reason given back."""


def to_event(alert: Any, now: float, max_lateness: float) -> dict[str, Any]:
    """One postable alert as a raw event; raise BadAlert with the reason.

    Called for every alert of every POST (about a fifth of the daemon's time per
    alert when it was written with a helper call per field): each check is one
    C-level call, and the event is built in one literal.
    """
    if type(alert) is not dict:
        raise BadAlert("an alert must be a JSON object")
    get = alert.get
    labels: Any = get("labels")
    if type(labels) is not dict:
        _check_strings(labels, "labels")
    try:  # one C-level pass: joining raises TypeError on a value that is not a string
        alertkey = '",'.join(map('="'.join, sorted(labels.items()))) + '"'
    except TypeError:
        _check_strings(labels, "labels")
        raise
    annotations: Any = get("annotations") or {}
    if type(annotations) is not dict or not ONLY_STR.issuperset(map(type, annotations.values())):
        _check_strings(annotations, "annotations")
    name = labels.get("alertname", "")
    if not name:
        raise BadAlert("labels.alertname is missing or empty")
    starts = _time(get("startsAt"), "startsAt")
    ends = _time(get("endsAt"), "endsAt")
    get_label = labels.get
    event: dict[str, Any] = {
        "node": get_label("instance") or get_label("node") or get_label("job") or "prometheus",
        "alertgroup": name,
        "alertkey": alertkey,
        "manager": "prometheus",
        "labels": labels,
        "annotations": annotations,
    }
    summary = annotations.get("summary") or annotations.get("description")
    if summary:  # else the default applies: `<alertgroup> on <node>`
        event["summary"] = summary
    severity = get_label("severity")
    if severity is not None:
        level = SEVERITY_OF_NAME.get(severity)
        event_severity = level if level is not None else _severity(severity)
        if event_severity is not None:
            event["severity"] = event_severity
    if generator := get("generatorURL"):
        annotations.setdefault("generator_url", str(generator))
    if ends is not None and ends <= now:
        event["type"] = "resolution"
        event["timestamp"] = ends if ends >= now - max_lateness else now
    else:
        at = now if starts is None or starts < now - max_lateness else starts
        event["timestamp"] = at
        if ends is not None:
            event["expire_after"] = ends - at
    return event


def _severity(value: str) -> int | None:
    """A severity off the usual spellings; None for Prometheus's own words (`page`): a label only."""
    try:
        return parse_severity(value)
    except ValueError:
        return None


def _check_strings(value: Any, name: str) -> None:
    """Raise BadAlert unless `value` is an object of strings (the slow path of the check).

    The parsed body is ours and taken as it is (a copy per alert cost more than the check).
    """
    if not isinstance(value, dict):
        raise BadAlert(f"{name} must be an object of strings")
    key = next((k for k, item in value.items() if not isinstance(item, str)), None)
    if key is not None:
        raise BadAlert(f"{name}.{key} must be a string")


def _time(value: Any, name: str) -> float | None:
    if type(value) is str:
        try:
            return _stamp(value)
        except ValueError as exc:
            raise BadAlert(f"{name}: {exc}") from None
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise BadAlert(f"{name}: {exc}") from None


@lru_cache(maxsize=1024)
def _stamp(value: str) -> float | None:
    """An RFC 3339 text, once per distinct one: Prometheus sends a few `startsAt`/`endsAt`
    per evaluation for many alerts. None: not set (empty, or Go's zero time)."""
    if value == "" or value.startswith(_ZERO_TIME_PREFIX):
        return None
    return parse_timestamp(value)
