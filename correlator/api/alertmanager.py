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

import contextlib
from typing import Any

from correlator.model import parse_severity
from correlator.timeparse import parse_timestamp

# Go's zero time, which Alertmanager's clients send for "not set"
_ZERO_TIME_PREFIX = "0001-01-01"


class BadAlert(ValueError):
    """A postable alert that cannot be taken: the message is the reason given back."""


def to_event(alert: Any, now: float, max_lateness: float) -> dict[str, Any]:
    """One postable alert as a raw event; raise BadAlert with the reason."""
    if not isinstance(alert, dict):
        raise BadAlert("an alert must be a JSON object")
    labels = _string_map(alert.get("labels"), "labels")
    annotations = _string_map(alert.get("annotations") or {}, "annotations")
    name = labels.get("alertname", "")
    if not name:
        raise BadAlert("labels.alertname is missing or empty")
    starts = _time(alert.get("startsAt"), "startsAt")
    ends = _time(alert.get("endsAt"), "endsAt")
    event: dict[str, Any] = {
        "node": labels.get("instance") or labels.get("node") or labels.get("job") or "prometheus",
        "alertgroup": name,
        "alertkey": ",".join([f'{k}="{v}"' for k, v in sorted(labels.items())]),
        "manager": "prometheus",
        "summary": annotations.get("summary") or annotations.get("description") or "",
        "labels": labels,
        "annotations": annotations,
    }
    severity = labels.get("severity")
    if severity is not None:
        with contextlib.suppress(ValueError):  # Prometheus's own words (`page`): a label only
            event["severity"] = parse_severity(severity)
    if generator := alert.get("generatorURL"):
        annotations.setdefault("generator_url", str(generator))
    at = now if starts is None or starts < now - max_lateness else starts
    if ends is not None and ends <= now:
        event["type"] = "resolution"
        event["timestamp"] = ends if ends >= now - max_lateness else now
    else:
        event["timestamp"] = at
        if ends is not None:
            event["expire_after"] = ends - at
    if not event["summary"]:
        del event["summary"]  # the default applies: `<alertgroup> on <node>`
    return event


def _string_map(value: Any, name: str) -> dict[str, str]:
    """`value` itself once checked: a JSON object's keys are strings, and the parsed
    body is ours (a copy per alert cost more than the check)."""
    if not isinstance(value, dict):
        raise BadAlert(f"{name} must be an object of strings")
    if not all(isinstance(item, str) for item in value.values()):
        key = next(k for k, item in value.items() if not isinstance(item, str))
        raise BadAlert(f"{name}.{key} must be a string")
    return value


def _time(value: Any, name: str) -> float | None:
    if (
        value is None
        or value == ""
        or (isinstance(value, str) and value.startswith(_ZERO_TIME_PREFIX))
    ):
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise BadAlert(f"{name}: {exc}") from None
