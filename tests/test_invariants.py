"""Invariants under random traffic, acknowledgements and reloads, one rule of every kind.

Random events (late ones included) over a small graph of nodes, with reloads
that change rule definitions now and then. Topology, threshold and incident
rules cover the same alerts (the incident also takes the threshold's alert), so
their parents meet. After every step: what each rule says it holds is exactly
what the engine records as its suppressions, and `suppressed_by` is the first
of those; the parents form a forest, every parent is on the engine's record,
and an open row points at a parent that is not open only if an incident rule
gave it. After the storm, with every alert cleared and the clock moved on,
every rule's state has drained to nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.errors import EventError
from correlator.ruleset.loader import RuleSet
from correlator.testing import feed

RULES = """
topology:
  core: {}
  sw1: {depends_on: [core]}
  sw2: {depends_on: [core]}
  h1: {depends_on: [sw1]}
  h2: {depends_on: [sw1, sw2]}
  h3: {depends_on: [sw2]}
inhibit_rules:
  - name: inh
    source_matchers: ['alertgroup="Site"']
    target_matchers: ['severity<=major']
    equal: [site]
correlate:
  - {name: topo, kind: topology, match: ['alertgroup=~"Down|Site"']}
  - {name: thr, kind: threshold, match: ['alertgroup="Down"'], group_by: [labels.site],
     count: 3, window: 60s, alert: {labels: {site: "{{ group.site }}"}}}
  - {name: inc, kind: incident, match: ['alertgroup=~"Down|Lat|thr"'], group_by: [labels.site],
     window: 120s, min_members: 2}
  - {name: flap, kind: flapping, changes: 3, window: 10m, stable_for: 2m}
  - {name: maint, kind: maintenance, match: ['labels.site="b"'],
     schedule: {cron: "*/20 * * * *", duration: 5m}}
  - {name: esc, kind: escalate, match: ['severity>=major'], after: 3m,
     set: {labels.priority: P1, severity: critical}}
  - {name: pr, kind: pair, first: ['alertgroup="JobStart"'], second: ['alertgroup="JobEnd"'],
     on: [node], within: 90s}
  - {name: chg, kind: change, change: ['alertgroup="Deploy"'], on: [labels.site], within: 5m}
  - {name: clr, kind: clear, problem: ['alertgroup="Down"'], resolution: ['alertgroup="Up"'],
     on: [node]}
  - {name: abs, kind: absence, match: ['alertgroup="HB"'], group_by: [node], for: 2m}
"""
EDITS = [
    ("stable_for: 2m", "stable_for: 3m"),
    ("after: 3m", "after: 4m"),
    ("min_members: 2", "min_members: 3"),
    ("count: 3", "count: 2"),
    ("duration: 5m", "duration: 6m"),
    ("equal: [site]", "equal: [site, x]"),
    ("target_matchers: ['severity<=major']", "target_matchers: ['severity<=minor']"),
]
NODES = ["core", "sw1", "sw2", "h1", "h2", "h3", "x"]
GROUPS = ["Down", "Site", "Lat", "JobStart", "JobEnd", "Deploy", "Up", "HB"]
WEIGHTED = [*GROUPS, "Down", "Down", "Down", "Lat"]  # the alerts parents are set on, more often
HOLDING = ("inhibit", "topology", "maintenance")


def random_event(rng: random.Random, now: float) -> dict[str, Any]:
    """An event on the small graph: any kind, severity and type, some stamped late."""
    return {
        "node": rng.choice(NODES),
        "alertgroup": rng.choice(WEIGHTED),
        "alertkey": rng.choice(["", "k"]),
        "severity": rng.choice(["clear", "indeterminate", "minor", "major", "critical"]),
        "type": rng.choice(["problem", "problem", "resolution", "info"]),
        "timestamp": now - rng.choice([0, 0, 0, 10, 100]),
        "labels": {"site": rng.choice(["a", "b", ""])},
    }


def check(eng: Engine) -> None:
    """Every rule's holds are the engine's record of its suppressions, and nothing else."""
    if eng._unstarted or eng._retired:
        return  # a reload's changes take effect at the next entry
    records = eng.suppressions.holders
    for ident, holders in records.items():
        row = eng.table.rows[ident]
        assert holders and row.suppressed_by == holders[0], ident
        assert all(h in eng.operators for h in holders), (ident, holders)
    for name, op in eng.operators.items():
        if op.kind in HOLDING:
            held = set(op._held)  # type: ignore[attr-defined]
        elif op.kind == "flapping":
            held = {i for i, track in op._rows.items() if track.flapping}  # type: ignore[attr-defined]
        else:
            continue
        held &= eng.table.rows.keys()
        recorded = {i for i, holders in records.items() if name in holders}
        assert held == recorded, (name, held ^ recorded)
    for ident, row in eng.table.rows.items():
        assert row.suppressed_by is None or ident in records, ident
    check_parents(eng)


def check_parents(eng: Engine) -> None:
    """A forest of parents, each on the engine's record; only incidents point at closed rows."""
    rows = eng.table.rows
    links = eng.parents.links
    for ident, row in rows.items():
        seen = {ident}
        current = row.parent
        while current is not None:
            assert current not in seen, f"loop of parents through {ident}: {seen}"
            seen.add(current)
            up = rows.get(current)
            current = up.parent if up is not None else None
        link = links.get(ident)
        assert (link.parent if link is not None else None) == row.parent, ident
        if row.parent is None or row.status == "cleared":
            continue
        parent = rows.get(row.parent)
        if parent is None or parent.status == "cleared":
            assert link is not None and link.kind == "incident", (ident, link)


@pytest.mark.parametrize("seed", range(30))
def test_holds_agree_and_state_drains(ruleset: Callable[[str], RuleSet], seed: int) -> None:
    rng = random.Random(seed)
    eng = Engine(ruleset(RULES))
    now = 1000.0
    for _ in range(300):
        now += rng.choice([0, 1, 5, 20, 60])
        if rng.random() < 0.02:
            text = RULES
            for old, new in EDITS:
                if rng.random() < 0.4:
                    text = text.replace(old, new)
            eng.load(ruleset(text))
        if rng.random() < 0.03 and eng.table.rows:
            eng.acknowledge(rng.choice(sorted(eng.table.rows)), "op", now)
            continue
        event = random_event(rng, now)
        with suppress(EventError):  # late beyond max_lateness: dead-lettered
            feed(eng, event, now=now)
        check(eng)
    for step in range(200):  # clear everything, then let every window and grace run out
        now += 60
        eng.tick(now)
        if step < 5:
            for row in list(eng.table.rows.values()):
                if row.status != "cleared":
                    eng.clear(row, now, "op", "end of the storm")
        check(eng)
    assert {name: op.size() for name, op in eng.operators.items() if op.size()} == {}
    assert not eng.suppressions.holders and not eng.table.rows and not eng.parents.links
