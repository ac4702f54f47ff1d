"""An incident's counts of open members per severity answer what a scan of its rows would.

The counts are what the rule was told of each member, so they are used only
while no other delivery is under way (`Context.depth` 1). Random traffic with
rules that change members' severity while others are being told of a change
(an escalation's `set:`, a policy on the incident setting its root's severity,
an operator's severity), clears, reopens, re-made rows and a restore midway:
every answer the counts give equals the scan's, and the changes published are
those of an engine that always scans.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pytest

from correlator.correlate import incident
from correlator.engine import Engine
from correlator.errors import EventError
from correlator.model import CLEARED
from correlator.ruleset.loader import RuleSet

RULES = """
topology:
  core: {}
  sw1: {depends_on: [core]}
  h1: {depends_on: [sw1]}
  h2: {depends_on: [sw1]}
correlate:
  - {name: topo, kind: topology, match: ['alertgroup="Down"']}
  - {name: thr, kind: threshold, match: ['alertgroup="Down"'], group_by: [labels.site],
     count: 3, window: 60s, alert: {labels: {site: "{{ group.site }}"}, severity: major}}
  - {name: esc, kind: escalate, match: ['severity>=minor'], after: 90s,
     set: {severity: critical}}
  - {name: inc, kind: incident, match: ['alertgroup=~"Down|Lat|thr"'], group_by: [labels.site],
     window: 120s, min_members: 2, max_members: 6}
  - {name: one, kind: incident, match: ['alertgroup="Lat"'], group_by: [node], window: 60s}
  - {name: clr, kind: clear, problem: ['alertgroup="Down"'], resolution: ['alertgroup="Up"'],
     on: [node]}
policies:
  - name: lift-the-root
    on: [incident]
    match: ['labels.lift="yes"']
    actions:
      - set: {severity: "{{ labels.to }}"}
"""
NODES = ["core", "sw1", "h1", "h2", "x", "y"]
LEVELS = ["clear", "indeterminate", "warning", "minor", "major", "critical"]


def random_event(rng: random.Random, now: float) -> dict[str, Any]:
    event = {
        "node": rng.choice(NODES),
        "alertgroup": rng.choice(["Down", "Down", "Lat", "Lat", "Up"]),
        "severity": rng.choice(LEVELS),
        "type": rng.choice(["problem", "problem", "problem", "resolution"]),
        "timestamp": now - rng.choice([0, 0, 0, 10, 50]),
        "labels": {
            "site": rng.choice(["a", "b"]),
            "lift": rng.choice(["yes", "no"]),
            "to": rng.choice(LEVELS),
        },
    }
    if rng.random() < 0.2:  # cleared by expiry, then deleted and made again
        event["expire_after"] = "2m"
    return event


def storm(make: Callable[[], Engine], seed: int) -> list[dict[str, Any]]:
    """Random traffic and operator actions, restored into a fresh engine halfway."""
    rng = random.Random(seed)
    eng = make()
    out: list[dict[str, Any]] = []
    now = 1000.0
    for step in range(400):
        now += rng.choice([0, 1, 5, 20, 60])
        out += [c.to_dict() for c in eng.tick(now)]
        if step == 200:
            restored = make()
            restored.restore(eng.snapshot())
            eng = restored
        roll = rng.random()
        rows = sorted(eng.table.rows)
        if roll < 0.08 and rows:
            ident = rng.choice(rows)
            action = rng.choice(["severity", "clear", "ack"])
            value = rng.choice(LEVELS) if action == "severity" else ""
            out += [c.to_dict() for c in eng.operate(action, ident, "op", now, value)]
            continue
        with suppress(EventError):
            event = random_event(rng, now)
            out += [c.to_dict() for c in eng.process(event, event["timestamp"])]
    return out


@pytest.mark.parametrize("seed", range(25))
def test_counts_answer_as_a_scan_of_the_rows(
    ruleset: Callable[[str], RuleSet], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = ruleset(RULES)
    told = incident._told
    answered = 0

    def checked(inc: Any, ctx: Any) -> int | None:
        nonlocal answered
        counts = told(inc, ctx)
        if counts is not None:
            levels = [m.alert.severity for m in inc.members.values() if m.alert.status != CLEARED]
            assert counts == sum(1 << (incident._BITS * level) for level in levels), inc.id
            highest = (counts.bit_length() - 1) // incident._BITS if counts else 0
            assert highest == max(levels, default=0), inc.id
            answered += 1
        return counts

    monkeypatch.setattr(incident, "_told", checked)
    transition = Engine._transition

    def only_rows_of_the_table(eng: Engine, kind: str, alert: Any, *args: Any) -> None:
        # what the counts rest on: every change the rules hear of is of a row in the table
        assert kind == "deleted" or eng.table.get(alert.identifier) is alert, (kind, alert)
        transition(eng, kind, alert, *args)

    monkeypatch.setattr(Engine, "_transition", only_rows_of_the_table)
    counted = storm(lambda: Engine(rules, snapshots=True, delete_cleared_after=30.0), seed)
    assert answered > 20  # the counts did answer

    monkeypatch.setattr(Engine, "_transition", transition)
    monkeypatch.setattr(incident, "_told", lambda inc, ctx: None)  # every answer a scan
    assert storm(lambda: Engine(rules, snapshots=True, delete_cleared_after=30.0), seed) == counted


def test_nested_delivery_reads_the_rows(
    ruleset: Callable[[str], RuleSet], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy on the incident lifts its root while the rule is still publishing:
    the incident shown inside that delivery has the root's new severity."""
    eng = Engine(ruleset(RULES))
    depths: list[int] = []
    told = incident._told

    def seen(inc: Any, ctx: Any) -> int | None:
        depths.append(ctx.depth)
        return told(inc, ctx)

    monkeypatch.setattr(incident, "_told", seen)
    lift = {"site": "a", "lift": "yes", "to": "critical"}
    eng.process({"node": "h1", "alertgroup": "Lat", "severity": "minor", "labels": lift}, 1.0)
    changes = eng.process(
        {"node": "h2", "alertgroup": "Lat", "severity": "warning", "labels": lift}, 2.0
    )
    shown = [c.incident["severity"] for c in changes if c.incident and c.incident["rule"] == "inc"]
    assert shown and shown[-1] == 5
    assert 1 in depths and max(depths) > 1


def test_a_closing_incident_whose_root_was_deleted_is_still_told_to_policies(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """The root cause cleared and was deleted before its incident closed: the policy on
    the incident still notifies of the close (with the row as it was last), but sets and
    notes nothing on a row that is gone, so no change names the deleted row again."""
    rules = """
receivers: [{name: bridge}]
correlate:
  - {name: inc, kind: incident, match: ['alertgroup="Down"'], group_by: [labels.site],
     window: 120s, min_members: 2}
policies:
  - {name: call, on: [incident], actions: [{set: {labels.paged: "yes"}}, {notify: bridge}]}
"""
    eng = Engine(ruleset(rules), delete_cleared_after=60.0)
    site = {"site": "a"}
    eng.process({"node": "h1", "alertgroup": "Down", "labels": site}, 1.0)
    eng.process({"node": "h2", "alertgroup": "Down", "labels": site}, 2.0)
    eng.process({"node": "h1", "alertgroup": "Down", "type": "resolution", "labels": site}, 3.0)
    eng.tick(100.0)
    assert "h1:Down::" not in eng.table.rows
    changes = eng.process(
        {"node": "h2", "alertgroup": "Down", "type": "resolution", "labels": site}, 101.0
    )
    assert [c.kind for c in changes] == ["alert.cleared", "incident.closed", "notification"]
    assert changes[1].incident["root_cause"] == "h1:Down::"
    assert [a.identifier for a in changes[2].alerts or ()] == ["h1:Down::"]


def test_a_cleared_member_counts_for_nothing_whatever_its_severity(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """A policy on the incident lifts its root's severity as the incident closes (the
    root has cleared): the closed incident's severity stays 0 and it is not updated."""
    eng = Engine(ruleset(RULES))
    lift = {"site": "a", "lift": "yes", "to": "critical"}
    eng.process({"node": "h1", "alertgroup": "Lat", "severity": "minor", "labels": lift}, 1.0)
    changes = eng.process(
        {"node": "h1", "alertgroup": "Lat", "type": "resolution", "labels": lift}, 3.0
    )
    assert [(c.kind, c.incident["status"], c.incident["severity"]) for c in changes if c.incident
            ] == [("incident.closed", "closed", 0)]  # fmt: skip
    assert eng.table.rows["h1:Lat::"].severity == 5  # the policy's doing: the row is cleared
