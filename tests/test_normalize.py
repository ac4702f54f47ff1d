"""Normalize (probe) rules: first match wins, continue, discard, templates, identifiers."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest

from correlator.engine import Engine
from correlator.errors import EventError, InvalidEvent

RULES = """
normalize:
  - name: link
    match: ['raw.program="ifmon"']
    fields: {node: "{{ raw.host }}", alertgroup: LinkDown, alertkey: "{{ raw.ifname }}",
             severity: major, type: "{{ 'resolution' if raw.state == 'up' else 'problem' }}"}
    labels: {site: "{{ raw.dc }}"}
    identifier: [node, alertgroup, alertkey]
    expire_after: 1h
    continue: true
  - name: link-team
    match: ['program="ifmon"']
    labels: {team: network}
  - name: never-reached
    match: ['program="ifmon"']
    labels: {team: wrong}
  - name: noise
    match: ['raw.level="debug"']
    discard: true
  - name: cel-only
    when: 'raw.kind == "disk" && raw.pct > 90.0'
    fields: {node: "{{ host }}", alertgroup: DiskFull, severity: "{{ 'critical' if pct > 95 else 'minor' }}"}
"""


def test_rule_fields_labels_identifier_and_continue(engine: Callable[..., Engine]) -> None:
    """Templates fill fields and labels; continue lets the next rule add; the first stop wins."""
    eng = engine(RULES)
    eng.process(
        {"program": "ifmon", "host": "r1", "ifname": "xe-1", "state": "down", "dc": "ams1"}, 5
    )
    row = eng.table.get("r1:LinkDown:xe-1")
    assert row is not None
    assert row.severity == 4 and row.type == "problem"
    assert row.labels == {"site": "ams1", "team": "network"}
    assert row.expire_at == 5 + 3600
    assert eng.rules.normalizer.hits == {
        "link": 1, "link-team": 1, "never-reached": 0, "noise": 0, "cel-only": 0
    }  # fmt: skip


def test_templated_type_produces_resolution(engine: Callable[..., Engine]) -> None:
    """A rule can turn an `up` message into the resolution of the `down`."""
    eng = engine(RULES)
    eng.process({"program": "ifmon", "host": "r1", "ifname": "xe-1", "state": "down"}, 5)
    eng.process({"program": "ifmon", "host": "r1", "ifname": "xe-1", "state": "up"}, 6)
    row = eng.table.get("r1:LinkDown:xe-1")
    assert row is not None and row.status == "cleared"


def test_discard_is_counted_not_an_error(engine: Callable[..., Engine]) -> None:
    """`discard: true` drops the event and counts it by rule."""
    eng = engine(RULES)
    assert eng.process({"level": "debug", "node": "x", "alertgroup": "y"}, 1) == []
    assert eng.stats.discarded["noise"] == 1
    assert len(eng.table) == 0


def test_cel_when_and_bare_names(engine: Callable[..., Engine]) -> None:
    """`when:` is CEL over the raw event; bare names in templates read the raw event."""
    eng = engine(RULES)
    eng.process({"kind": "disk", "pct": 97.0, "host": "db1"}, 1)
    eng.process({"kind": "disk", "pct": 50.0, "host": "db2", "node": "db2", "alertgroup": "Ok"}, 1)
    row = eng.table.get("db1:DiskFull::")
    assert row is not None and row.severity == 5
    assert eng.table.get("db2:Ok::") is not None  # no rule matched: passed through


def test_unmatched_event_with_canonical_fields_passes_unchanged(
    engine: Callable[..., Engine],
) -> None:
    """An event that already has the canonical fields needs no rule."""
    eng = engine(RULES)
    event = {
        "node": "h9", "alertgroup": "Ping", "alertkey": "k", "manager": "m", "agent": "a",
        "severity": "warning", "summary": "s", "labels": {"env": "prod", "n": 3, "up": True, "gone": None},
        "annotations": {"runbook_url": "u"},
    }  # fmt: skip
    eng.process(event, 1)
    row = eng.table.get("h9:Ping:k:m")
    assert row is not None
    assert (row.agent, row.severity, row.summary) == ("a", 2, "s")
    assert row.labels == {"env": "prod", "n": "3", "up": "true"} and row.annotations == {
        "runbook_url": "u"
    }


def test_explicit_identifier_and_alertname_alias(engine: Callable[..., Engine]) -> None:
    """A raw `identifier` is kept; `alertname` stands in for a missing alertgroup."""
    eng = engine("{}")
    eng.process({"node": "h1", "alertname": "HighCPU", "identifier": "custom-1"}, 1)
    row = eng.table.get("custom-1")
    assert row is not None and row.alertgroup == "HighCPU"


def test_missing_template_values_render_empty(engine: Callable[..., Engine]) -> None:
    """A template over a missing raw key renders empty on both the fast and Jinja2 paths."""
    eng = engine(
        """
        normalize:
          - name: r
            match: ['raw.src="x"']
            fields: {node: "{{ raw.host }}", alertgroup: G, alertkey: "{{ raw.nothing }}",
                     summary: "[{{ raw.nothing }}]"}
        """
    )
    eng.process({"src": "x", "host": "h"}, 1)
    row = eng.table.get("h:G::")
    assert row is not None and row.summary == "[]"


def test_identifier_that_is_not_a_string_is_dead_lettered(engine: Callable[..., Engine]) -> None:
    """`identifier: 0` is a mistake, not a request for the default identifier."""
    eng = engine()
    with pytest.raises(InvalidEvent, match="'identifier' must be a string"):
        eng.process({"node": "h1", "alertgroup": "HighCPU", "identifier": 0}, 1)


EMPTY_FIELDS = """
normalize:
  - name: r
    match: ['raw.src="x"']
    fields: {node: "{{ raw.host }}", alertgroup: "{{ raw.group }}",
             alertkey: "{{ raw.key }}", manager: "{{ raw.mgr }}", agent: "{{ raw.agent }}",
             severity: "{{ raw.sev }}", type: "{{ raw.kind }}",
             summary: "{% if raw.text %}{{ raw.text }}{% endif %}"}
"""


@pytest.mark.parametrize("empty", ["", None, "missing"])
def test_canonical_templates_rendering_empty_take_the_defaults(
    engine: Callable[..., Engine], empty: str | None
) -> None:
    """A canonical field whose template renders empty is not set: its default applies."""
    eng = engine(EMPTY_FIELDS)
    event: dict[str, object] = {"src": "x", "host": "h1", "group": "G"}
    if empty != "missing":
        event |= dict.fromkeys(("key", "mgr", "agent", "sev", "kind", "text"), empty)
    eng.process(event, 1)
    row = eng.table.get("h1:G::")
    assert row is not None
    assert (row.severity, row.type, row.summary) == (1, "problem", "G on h1")
    assert (row.alertkey, row.manager, row.agent) == ("", "", "")


def test_blank_severity_and_type_take_the_defaults(engine: Callable[..., Engine]) -> None:
    """Severity and type are parsed: a blank value (spaces only) is not set either."""
    eng = engine(EMPTY_FIELDS)
    eng.process({"src": "x", "host": "h1", "group": "G", "sev": " ", "kind": " \n"}, 1)
    row = eng.table.get("h1:G::")
    assert row is not None and (row.severity, row.type) == (1, "problem")


@pytest.mark.parametrize("empty", ["", None])
def test_raw_canonical_values_given_empty_take_the_defaults(
    engine: Callable[..., Engine], empty: str | None
) -> None:
    """A raw event's own canonical values given as "" or null mean "not set"."""
    eng = engine()
    event = {"node": "h1", "alertgroup": "G", "timestamp": empty}
    event |= dict.fromkeys(("severity", "type", "summary", "alertkey", "expire_after"), empty)
    event |= dict.fromkeys(("manager", "agent", "identifier", "labels"), empty)
    eng.process(event, 7)
    row = eng.table.get("h1:G::")
    assert row is not None
    assert (row.severity, row.type, row.summary, row.last_occurrence) == (
        1,
        "problem",
        "G on h1",
        7,
    )
    assert row.expire_at is None


@pytest.mark.parametrize(("field", "other"), [("host", "group"), ("group", "host")])
def test_required_fields_rendering_empty_are_dead_lettered_with_reason(
    engine: Callable[..., Engine], field: str, other: str
) -> None:
    """node or alertgroup rendering empty dead-letters the event, naming the empty field."""
    eng = engine(EMPTY_FIELDS)
    name = {"host": "node", "group": "alertgroup"}[field]
    with pytest.raises(InvalidEvent, match=f"required field '{name}' is empty"):
        eng.process({"src": "x", field: "", other: "v"}, 1)


@pytest.mark.parametrize(
    "field",
    ["node", "alertgroup", "alertkey", "manager", "agent", "severity", "type", "summary",
     "timestamp", "expire_after", "labels", "annotations"],
)  # fmt: skip
@pytest.mark.parametrize("value", [["x"], {"a": 1}, True])
def test_a_canonical_field_of_the_wrong_shape_is_dead_lettered(
    engine: Callable[..., Engine], field: str, value: object
) -> None:
    """A list, a map or a boolean where a field wants text or a number is an invalid event
    (dead-lettered with a reason) or taken as text, never a crash of the engine."""
    eng = engine()
    with contextlib.suppress(EventError):
        eng.process({"node": "a", "alertgroup": "b", field: value}, 1.0)
