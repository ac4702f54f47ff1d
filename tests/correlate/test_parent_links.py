"""Parent links when topology, threshold and incident rules meet over the same alerts.

Whatever rules combine, parents form a forest, and an open row points at a
parent that is not open only if an incident rule gave it (its root cause).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from correlator.engine import Engine
from correlator.testing import feed

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z

TOPOLOGY_AND_INCIDENT = """
topology:
  h3: {depends_on: [tor-b]}
  vm1: {depends_on: [h3]}
correlate:
  - {name: cascade, kind: incident, match: ['alertgroup=~"Down|Unreachable"'],
     group_by: [labels.site], window: 10m}
  - {name: uplink, kind: topology, match: ['alertgroup=~"Down|Unreachable"']}
"""

STORM = """
correlate:
  - {name: cascade, kind: incident, group_by: [labels.site], window: 10m}
  - name: site-outage
    kind: threshold
    match: ['alertgroup="NodeDown"']
    group_by: [labels.site]
    count: 3
    window: 1m
    alert: {alertgroup: SiteOutage, labels: {site: "{{ group.site }}"}}
"""


def ev(at: float, node: str, group: str = "Down", **extra: Any) -> dict[str, Any]:
    event = {"node": node, "alertgroup": group, "severity": "major", "timestamp": T0 + at}
    event.setdefault("labels", {"site": "a"})
    return {**event, **extra}


def parent(eng: Engine, ident: str) -> str | None:
    return eng.table.rows[ident].parent


def assert_forest(eng: Engine) -> None:
    for ident, row in eng.table.rows.items():
        seen, current = {ident}, row.parent
        while current is not None:
            assert current not in seen, f"loop of parents through {ident}"
            seen.add(current)
            up = eng.table.get(current)
            current = up.parent if up is not None else None


def test_a_given_back_parent_never_closes_a_loop(engine: Callable[[str], Engine]) -> None:
    """Topology gives back an incident's parent only if it closes no loop of parents.

    h3's incident parent is vm1 (the incident's root cause); topology moves h3
    under tor-b and vm1 too. When tor-b clears, vm1 moves under h3, so giving
    h3 back its incident parent vm1 would make h3 and vm1 each other's parent:
    h3 is released with no parent instead.
    """
    eng = engine(TOPOLOGY_AND_INCIDENT)
    feed(eng, ev(0, "vm1"))
    feed(eng, ev(10, "tor-b", labels={"site": "b"}))
    feed(eng, ev(20, "h3"))
    assert parent(eng, "h3:Down::") == "tor-b:Down::"
    feed(eng, ev(30, "tor-b", type="resolution", labels={"site": "b"}))
    assert parent(eng, "vm1:Down::") == "h3:Down::"
    assert parent(eng, "h3:Down::") is None
    assert_forest(eng)


def test_a_symptom_never_keeps_a_cleared_root(engine: Callable[[str], Engine]) -> None:
    """When its root clears, a symptom moves to the next root even if that one was its child.

    The late h3 event becomes the incident's root cause, so the incident makes
    tor-b:Down (same site) h3's child. When tor-b:Unreachable, h3's topology
    root, clears, tor-b:Down is the next root: the dependency wins over the
    incident's guess, h3 moves under it and tor-b:Down loses its incident
    parent (journal note), instead of h3 pointing at the cleared root.
    """
    eng = engine(TOPOLOGY_AND_INCIDENT)
    feed(eng, ev(20, "tor-b", "Unreachable"))
    feed(eng, ev(10, "h3"), now=T0 + 25)
    feed(eng, ev(70, "tor-b"), now=T0 + 85)
    feed(eng, ev(75, "tor-b", "Unreachable", type="resolution"), now=T0 + 90)
    assert parent(eng, "h3:Down::") == "tor-b:Down::"
    tor_b = eng.table.rows["tor-b:Down::"]
    assert tor_b.parent is None
    assert "parent h3:Down:: unset" in tor_b.journal[-1].text
    assert_forest(eng)


def test_a_storm_alert_is_never_the_child_of_its_member(
    engine: Callable[[str], Engine],
) -> None:
    """The threshold's group alert stays the parent of its members, not a child of one.

    The incident (over every alert of the site) takes the SiteOutage alert as a
    member and would make it a child of its root cause, the first host; the
    threshold then makes that host its member: the group parent wins and the
    incident's parent on the SiteOutage alert is unset.
    """
    eng = engine(STORM)
    for i, node in enumerate(["h1", "h2", "h3"]):
        feed(eng, ev(i, node, "NodeDown"))
    outage = "correlator:site-outage:a"
    assert parent(eng, outage) is None
    assert parent(eng, "h1:NodeDown::") == outage
    assert eng.table.rows[outage].incident == eng.table.rows["h1:NodeDown::"].incident
    assert_forest(eng)


def test_a_storm_alert_joining_late_is_not_made_a_child(
    engine: Callable[[str], Engine],
) -> None:
    """A member that joins after the threshold adopted the hosts never parents the group alert."""
    eng = engine(STORM)
    for i, node in enumerate(["h1", "h2", "h3", "h4"]):
        feed(eng, ev(i, node, "NodeDown"))
    outage = "correlator:site-outage:a"
    assert parent(eng, outage) is None
    assert parent(eng, "h4:NodeDown::") in (outage, "h1:NodeDown::")
    assert_forest(eng)


def test_members_let_go_of_a_cleared_group_alert(engine: Callable[[str], Engine]) -> None:
    """When the threshold's alert clears, open members lose that parent; cleared ones keep it.

    A cleared member keeps it as the record of what it was counted in; if it
    reopens after the group alert cleared, the stale parent goes.
    """
    eng = engine(
        """
        correlate:
          - {name: site-outage, kind: threshold, match: ['alertgroup="NodeDown"'],
             group_by: [labels.site], count: 2, window: 1m}
        """
    )
    feed(eng, ev(0, "h1", "NodeDown"))
    feed(eng, ev(1, "h2", "NodeDown"))
    outage = "correlator:site-outage:a"
    assert parent(eng, "h1:NodeDown::") == parent(eng, "h2:NodeDown::") == outage
    feed(eng, ev(5, "h2", "NodeDown", type="resolution"))
    eng.tick(T0 + 62)  # a minute without a matching event: the group alert clears
    assert eng.table.rows[outage].status == "cleared"
    assert parent(eng, "h1:NodeDown::") is None
    assert parent(eng, "h2:NodeDown::") == outage
    feed(eng, ev(70, "h2", "NodeDown"))
    assert parent(eng, "h2:NodeDown::") is None
    assert eng.parents.links.keys() == set()
