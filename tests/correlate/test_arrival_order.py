"""Order of arrival does not matter where the world does not order things.

Each test delivers the same events (same timestamps) in every possible order,
late by up to a couple of minutes, and checks that the outcome is the same:
who is whose parent, who is suppressed, what the incident and its root cause
are. A clear then releases what it held, whatever the order was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import permutations
from typing import Any

import pytest

# the rules of the kinds' own tests (pytest puts this folder on sys.path)
from test_inhibit import RULES as INHIBIT
from test_topology import RULES as TOPOLOGY

from correlator.engine import Engine
from correlator.ruleset.loader import RuleSet

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def deliver(eng: Engine, events: list[dict[str, Any]]) -> None:
    """Events in the order given, arriving a second apart after the newest timestamp."""
    arrive = max(e["timestamp"] for e in events)
    for i, event in enumerate(events):
        eng.run_timers_before(arrive + i)
        eng.process(event, arrive + i)


def orders(events: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for order in permutations(events):
        yield list(order)


def state(eng: Engine) -> dict[str, tuple[str | None, str | None, str]]:
    return {i: (a.parent, a.suppressed_by, a.status) for i, a in sorted(eng.table.rows.items())}


def event(node: str, group: str, at: float, **extra: Any) -> dict[str, Any]:
    return {"node": node, "alertgroup": group, "severity": "major", "timestamp": T0 + at, **extra}


def test_topology_roots_and_symptoms_do_not_depend_on_arrival(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """core is every symptom's root in all 120 orders; its clear hands them to agg-a."""
    rules = ruleset(TOPOLOGY)
    events = [event(n, "NodeDown", i) for i, n in enumerate(["core", "agg-a", "h1", "h2", "h3"])]
    held = ("core:NodeDown::", "uplink", "open")
    expected = {
        "agg-a:NodeDown::": held,
        "core:NodeDown::": (None, None, "open"),
        "h1:NodeDown::": held,
        "h2:NodeDown::": held,
        "h3:NodeDown::": held,
    }
    under_agg = ("agg-a:NodeDown::", "uplink", "open")
    after_clear = {
        "agg-a:NodeDown::": (None, None, "open"),  # released: its root cleared
        "core:NodeDown::": (None, None, "cleared"),
        "h1:NodeDown::": under_agg,
        "h2:NodeDown::": under_agg,
        "h3:NodeDown::": under_agg,
    }
    for order in orders(events):
        eng = Engine(rules)
        deliver(eng, order)
        assert state(eng) == expected, [e["node"] for e in order]
        eng.process({**event("core", "NodeDown", 300), "type": "resolution"}, T0 + 300)
        assert state(eng) == after_clear, [e["node"] for e in order]


def test_inhibition_does_not_depend_on_arrival(ruleset: Callable[[str], RuleSet]) -> None:
    """A source delivered before, between or after its targets mutes exactly them."""
    rules = ruleset(INHIBIT)
    events = [
        event("pdu-1", "SitePower", 0, severity="critical", labels={"site": "zrh1"}),
        event("sw-1", "FanSlow", 10, severity="warning", labels={"site": "zrh1"}),
        event("sw-2", "FanSlow", 20, severity="warning", labels={"site": "zrh1"}),
        event("sw-9", "FanSlow", 30, severity="warning", labels={"site": "ams1"}),
    ]
    muted = (None, "power-mutes-warnings", "open")
    expected = {
        "pdu-1:SitePower::": (None, None, "open"),
        "sw-1:FanSlow::": muted,
        "sw-2:FanSlow::": muted,
        "sw-9:FanSlow::": (None, None, "open"),
    }
    for order in orders(events):
        eng = Engine(rules)
        deliver(eng, order)
        assert state(eng) == expected, [e["node"] for e in order]
        source_clear = {**events[0], "type": "resolution", "timestamp": T0 + 300}
        eng.process(source_clear, T0 + 300)
        released = state(eng)
        assert all(s[1] is None for s in released.values()), [e["node"] for e in order]


INCIDENT = """
correlate:
  - name: cascade
    kind: incident
    match: ['labels.service!=""']
    group_by: [labels.service]
    window: 5m
    title: "{{ group.service }}: root {{ node }}"
"""


@pytest.mark.parametrize("late", [0, 100])
def test_incident_and_root_cause_do_not_depend_on_arrival(
    ruleset: Callable[[str], RuleSet], late: float
) -> None:
    """The earliest occurrence is the root cause, however late it is delivered."""
    rules = ruleset(INCIDENT)
    events = [
        event(f"{tier}-1", f"{tier.capitalize()}Errors", i * 60, labels={"service": "pay"})
        for i, tier in enumerate(["db", "api", "web"])
    ]
    for order in orders(events):
        eng = Engine(rules)
        arrive = T0 + 120 + late
        changes = []
        for i, ev in enumerate(order):
            changes += eng.run_timers_before(arrive + i) + eng.process(ev, arrive + i)
        views = [c.incident for c in changes if c.incident is not None]
        last = views[-1]
        assert {v["id"] for v in views} == {last["id"]}, [e["node"] for e in order]
        assert last["root_cause"] == "db-1:DbErrors::", [e["node"] for e in order]
        assert last["title"] == "pay: root db-1"
        assert sorted(last["members"]) == [
            "api-1:ApiErrors::",
            "db-1:DbErrors::",
            "web-1:WebErrors::",
        ]
        assert {a.parent for a in eng.table.rows.values()} == {None, "db-1:DbErrors::"}


THRESHOLD = """
correlate:
  - name: site-outage
    kind: threshold
    match: ['alertgroup="NodeUnreachable"']
    group_by: [labels.site]
    distinct: node
    count: 3
    window: 2m
"""


def test_threshold_counts_and_members_do_not_depend_on_arrival(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """Three hosts within the window raise the site alert once and all become its members."""
    rules = ruleset(THRESHOLD)
    events = [event(f"n{i}", "NodeUnreachable", i * 30, labels={"site": "ams1"}) for i in range(4)]
    for order in orders(events):
        eng = Engine(rules)
        deliver(eng, order)
        site = eng.table.rows["correlator:site-outage:ams1"]
        members = {a.identifier for a in eng.table.rows.values() if a.parent == site.identifier}
        assert members == {f"n{i}:NodeUnreachable::" for i in range(4)}, [e["node"] for e in order]
        assert site.status == "open" and site.summary.startswith("4 distinct node values")
