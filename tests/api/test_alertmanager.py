"""Alertmanager's postable alerts mapped to events (DESIGN.md §6), through the real engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.api.alertmanager import BadAlert, to_event
from correlator.engine import Engine

NOW = 1_796_310_000.0
LATE = 300.0


def _alert(**labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": "HighLoad", **labels}, "annotations": {}}


def test_fields_come_from_labels_and_annotations() -> None:
    """alertname, instance, severity by name, summary; labels and annotations kept."""
    alert = _alert(instance="web1:9100", job="node", severity="critical")
    alert["annotations"] = {"summary": "load 12", "description": "long", "runbook_url": "r"}
    alert["startsAt"] = "2026-12-03T15:00:00Z"
    alert["generatorURL"] = "http://prom/graph"
    event = to_event(alert, NOW, LATE)
    assert event["node"] == "web1:9100"
    assert event["alertgroup"] == "HighLoad"
    assert event["severity"] == 5
    assert event["summary"] == "load 12"
    assert event["manager"] == "prometheus"
    assert event["labels"] == alert["labels"]
    assert event["annotations"]["runbook_url"] == "r"
    assert event["annotations"]["generator_url"] == "http://prom/graph"
    assert event["timestamp"] == NOW - 0.0  # startsAt
    assert "type" not in event  # a problem


@pytest.mark.parametrize(
    ("labels", "node"),
    [
        ({"instance": "a", "node": "b", "job": "c"}, "a"),
        ({"node": "b", "job": "c"}, "b"),
        ({"job": "c"}, "c"),
        ({}, "prometheus"),
    ],
)
def test_node_falls_back_instance_node_job_prometheus(labels: dict[str, str], node: str) -> None:
    """The node is the first label of instance, node, job; else `prometheus`."""
    assert to_event(_alert(**labels), NOW, LATE)["node"] == node


@pytest.mark.parametrize(
    ("severity", "level"),
    [("critical", 5), ("warning", 2), ("info", 1), ("error", 4), ("4", 4), ("page", None)],
)
def test_severity_words(severity: str, level: int | None) -> None:
    """Names and numbers set the severity; Prometheus's own words keep the default."""
    event = to_event(_alert(severity=severity), NOW, LATE)
    assert event.get("severity") == level
    assert event["labels"]["severity"] == severity


def test_summary_falls_back_to_the_description_then_the_default() -> None:
    alert = _alert()
    alert["annotations"] = {"description": "disk 95%"}
    assert to_event(alert, NOW, LATE)["summary"] == "disk 95%"
    assert "summary" not in to_event(_alert(), NOW, LATE)


def test_ends_at_in_the_past_resolves_in_the_future_expires() -> None:
    """endsAt ≤ now: a resolution at endsAt; > now: the row's expiry from its occurrence."""
    past = _alert(instance="a")
    past["startsAt"], past["endsAt"] = "2026-12-03T14:50:00Z", "2026-12-03T14:59:00Z"
    event = to_event(past, NOW, LATE)
    assert (event["type"], event["timestamp"]) == ("resolution", NOW - 60)
    future = _alert(instance="a")
    future["startsAt"], future["endsAt"] = "2026-12-03T14:59:00Z", "2026-12-03T15:04:00Z"
    event = to_event(future, NOW, LATE)
    assert "type" not in event
    assert (event["timestamp"], event["expire_after"]) == (NOW - 60, 300.0)
    unset = _alert(instance="a")
    unset["endsAt"] = "0001-01-01T00:00:00Z"  # Go's zero time: not set
    assert "expire_after" not in to_event(unset, NOW, LATE)


def test_a_long_firing_alert_is_stamped_with_its_arrival() -> None:
    """Prometheus re-sends with the original startsAt: older than max_lateness → now."""
    alert = _alert()
    alert["startsAt"] = "2026-12-03T10:00:00Z"
    assert to_event(alert, NOW, LATE)["timestamp"] == NOW


@pytest.mark.parametrize(
    ("alert", "reason"),
    [
        ([], "must be a JSON object"),
        ({"labels": {}}, "alertname is missing"),
        ({"labels": {"alertname": ""}}, "alertname is missing"),
        ({"labels": "x"}, "labels must be an object"),
        ({"labels": {"alertname": "A", "n": 1}}, "labels.n must be a string"),
        ({"labels": {"alertname": "A"}, "startsAt": "yesterday"}, "startsAt"),
        ({"labels": {"alertname": "A"}, "annotations": {"a": None}}, "annotations.a"),
    ],
)
def test_bad_alerts_say_why(alert: Any, reason: str) -> None:
    with pytest.raises(BadAlert, match=reason):
        to_event(alert, NOW, LATE)


def test_alerts_alertmanager_keeps_apart_stay_apart(engine: Callable[[str], Engine]) -> None:
    """Same alertname and instance, another label: two rows; a re-send: one row, tally 2."""
    eng = engine("{}")
    for labels in ({"instance": "a", "dev": "sda"}, {"instance": "a", "dev": "sdb"}):
        eng.process(to_event(_alert(**labels), NOW, LATE), NOW)
    eng.process(to_event(_alert(instance="a", dev="sda"), NOW + 60, LATE), NOW + 60)
    rows = sorted(eng.table.rows.values(), key=lambda r: r.serial)
    assert [(r.node, r.alertgroup, r.tally) for r in rows] == [
        ("a", "HighLoad", 2),
        ("a", "HighLoad", 1),
    ]
    assert rows[0].identifier == 'a:HighLoad:alertname="HighLoad",dev="sda",instance="a":prometheus'
    resolved = _alert(instance="a", dev="sdb")
    resolved["endsAt"] = "2026-12-03T15:01:00Z"
    eng.process(to_event(resolved, NOW + 61, LATE), NOW + 61)
    assert rows[1].status == "cleared"
