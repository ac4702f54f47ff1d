"""`kind: topology`: alerts below an open upstream alert become its suppressed symptoms."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from correlator.correlate.topology import compile_graph, find_cycles
from correlator.engine import Engine
from correlator.errors import RuleSetError
from correlator.model import Alert, Change
from correlator.ruleset.loader import RuleSet, load_rules
from correlator.testing import feed

#        core
#       /    \
#    agg-a   agg-b      (h3 depends on both aggs: a diamond)
#    /  \     /  \
#   h1  h2   h3  h4
GRAPH = """
topology:
  core: {}
  agg-a: {depends_on: [core]}
  agg-b: {depends_on: [core]}
  h1: {depends_on: [agg-a]}
  h2: {depends_on: [agg-a]}
  h3: {depends_on: [agg-a, agg-b]}
  h4: {depends_on: [agg-b, unknown-pdu]}
"""
RULES = (
    GRAPH
    + """
correlate:
  - name: uplink
    kind: topology
    match: ['alertgroup=~"NodeDown|Unreachable"']
"""
)
NAME = "uplink"


def down(node: str, at: float, group: str = "NodeDown", **extra: Any) -> dict[str, Any]:
    return {"node": node, "alertgroup": group, "severity": "major", "timestamp": at, **extra}


def up(node: str, at: float, group: str = "NodeDown", **extra: Any) -> dict[str, Any]:
    return down(node, at, group, type="resolution", **extra)


def row(eng: Engine, node: str, group: str = "NodeDown") -> Alert:
    alert = eng.table.get(f"{node}:{group}::")
    assert alert is not None, node
    return alert


def parent_of(eng: Engine, node: str) -> str | None:
    return row(eng, node).parent


def kinds(changes: list[Change], node: str) -> list[str]:
    ident = f"{node}:NodeDown::"
    return [c.kind for c in changes if c.alert is not None and c.alert.identifier == ident]


@pytest.fixture
def eng(engine: Callable[[str], Engine]) -> Engine:
    return engine(RULES)


def test_symptoms_of_an_open_root_are_parented_and_suppressed(eng: Engine) -> None:
    """With the core down, hosts below it get `parent` = the core alert and are suppressed."""
    eng.process(down("core", 0), 0)
    changes = eng.process(down("h1", 5), 5)
    assert kinds(changes, "h1") == ["alert.created", "alert.updated", "alert.suppressed"]
    symptom = row(eng, "h1")
    assert (symptom.parent, symptom.suppressed_by) == ("core:NodeDown::", NAME)
    assert "h1 depends on core" in symptom.journal[-1].text
    assert row(eng, "core").suppressed_by is None


def test_root_arriving_late_adopts_open_symptoms(eng: Engine) -> None:
    """Order does not matter: hosts already alerting are adopted when the root opens."""
    for i, node in enumerate(("h1", "h2", "h3", "h4")):
        eng.process(down(node, i), i)
    changes = eng.process(down("core", 10), 10)
    for node in ("h1", "h2", "h3", "h4"):
        assert kinds(changes, node) == ["alert.updated", "alert.suppressed"]
        assert parent_of(eng, node) == "core:NodeDown::"
    assert row(eng, "core").journal[-1].text == "root cause of 4 downstream alerts"


def test_more_upstream_root_takes_over(eng: Engine) -> None:
    """An aggregation root's symptoms and the aggregation alert itself move under the core."""
    eng.process(down("agg-a", 0), 0)
    eng.process(down("h1", 1), 1)
    assert parent_of(eng, "h1") == "agg-a:NodeDown::"
    changes = eng.process(down("core", 2), 2)
    assert parent_of(eng, "h1") == "core:NodeDown::"
    assert parent_of(eng, "agg-a") == "core:NodeDown::"
    assert kinds(changes, "h1") == ["alert.updated"]  # re-parented, already suppressed
    assert kinds(changes, "agg-a") == ["alert.updated", "alert.suppressed"]


def test_root_clearing_moves_symptoms_to_next_open_ancestor(eng: Engine) -> None:
    """When the core clears, hosts under a still-open aggregation move under it."""
    for i, node in enumerate(("core", "agg-a", "h1", "h4")):
        eng.process(down(node, i), i)
    changes = eng.process(up("core", 10), 10)
    assert parent_of(eng, "h1") == "agg-a:NodeDown::"
    assert row(eng, "h1").suppressed_by == NAME
    assert kinds(changes, "agg-a") == ["alert.updated", "alert.unsuppressed"]
    assert kinds(changes, "h4") == ["alert.updated", "alert.unsuppressed"]
    assert (parent_of(eng, "h4"), row(eng, "h4").suppressed_by) == (None, None)
    assert row(eng, "h4").journal[-1].text == ("released: root core:NodeDown:: is no longer open")


def test_cleared_symptoms_keep_their_parent(eng: Engine) -> None:
    """A symptom that cleared under its root stays marked; only open symptoms are released."""
    eng.process(down("core", 0), 0)
    eng.process(down("h1", 1), 1)
    eng.process(down("h2", 2), 2)
    eng.process(up("h1", 3), 3)
    changes = eng.process(up("core", 4), 4)
    assert kinds(changes, "h1") == []
    assert (parent_of(eng, "h1"), row(eng, "h1").suppressed_by) == ("core:NodeDown::", NAME)
    assert parent_of(eng, "h2") is None


def test_symptom_reopening_without_root_is_released(eng: Engine) -> None:
    """A cleared symptom that reopens after its root cleared is not left suppressed."""
    eng.process(down("core", 0), 0)
    eng.process(down("h1", 1), 1)
    eng.process(up("h1", 2), 2)
    eng.process(up("core", 3), 3)
    changes = eng.process(down("h1", 4), 4)
    assert kinds(changes, "h1") == ["alert.updated", "alert.updated", "alert.unsuppressed"]
    assert (parent_of(eng, "h1"), row(eng, "h1").suppressed_by) == (None, None)


def test_root_reopening_adopts_again(eng: Engine) -> None:
    """A root that clears and reopens becomes the parent of the open hosts again."""
    eng.process(down("core", 0), 0)
    eng.process(down("h1", 1), 1)
    eng.process(up("core", 2), 2)
    eng.process(down("core", 3), 3)
    assert (parent_of(eng, "h1"), row(eng, "h1").suppressed_by) == ("core:NodeDown::", NAME)


def test_diamond_prefers_most_upstream_then_newest(eng: Engine) -> None:
    """h3 hangs below both aggregations: a tie of depth goes to the newest joiner across
    both nodes; when it clears, h3 moves under the other one."""
    eng.process(down("agg-b", 0), 0)
    eng.process(down("agg-a", 1), 1)
    eng.process(down("h3", 2), 2)
    assert parent_of(eng, "h3") == "agg-a:NodeDown::"
    eng.process(up("agg-b", 3), 3)
    assert parent_of(eng, "h3") == "agg-a:NodeDown::"
    eng.process(up("agg-a", 4), 4)
    assert parent_of(eng, "h3") is None
    eng.process(down("agg-b", 5), 5)
    eng.process(down("agg-a", 6), 6)
    eng.process(up("agg-a", 7), 7)
    assert parent_of(eng, "h3") == "agg-b:NodeDown::"


def test_newest_alert_on_the_root_node_is_the_root(eng: Engine) -> None:
    """Several alerts on the root node: a new symptom hangs under the one that joined the
    rule last, which for a reopened row is not the one with the highest serial."""
    eng.process(down("core", 0, "Unreachable"), 0)
    eng.process(down("core", 1), 1)
    eng.process(down("h1", 2), 2)
    assert parent_of(eng, "h1") == "core:NodeDown::"
    assert row(eng, "core").parent is None
    eng.process(up("core", 3, "Unreachable"), 3)
    eng.process(down("core", 4, "Unreachable"), 4)  # reopened: joins again, serial 1
    assert row(eng, "core", "Unreachable").serial < row(eng, "core").serial
    eng.process(down("h2", 5), 5)
    assert parent_of(eng, "h2") == "core:Unreachable::"
    assert parent_of(eng, "h1") == "core:NodeDown::"  # kept: its root is still open


def test_same_depth_newer_alert_does_not_steal_symptoms(eng: Engine) -> None:
    """A new alert at the depth of a symptom's open root (same node, or the other branch
    of a diamond) leaves the symptom where it is: no change at all."""
    eng.process(down("agg-a", 0), 0)
    eng.process(down("h3", 1), 1)
    changes = eng.process(down("agg-b", 2), 2)
    assert kinds(changes, "h3") == []
    assert parent_of(eng, "h3") == "agg-a:NodeDown::"
    assert not any("root cause" in entry.text for entry in row(eng, "agg-b").journal)
    eng.process(down("core", 3, "Unreachable"), 3)  # more upstream: adopts all three
    eng.process(down("h1", 4), 4)
    changes = eng.process(down("core", 5), 5)
    for node in ("agg-a", "agg-b", "h1", "h3"):
        assert kinds(changes, node) == [], node
        assert parent_of(eng, node) == "core:Unreachable::", node
    eng.process(down("h2", 6), 6)
    assert parent_of(eng, "h2") == "core:NodeDown::"


def test_root_clearing_moves_symptoms_to_the_newest_remaining_alert(eng: Engine) -> None:
    """The oldest root clearing moves nobody; the symptoms' own root clearing moves each
    once (one `alert.updated`), under the newest alert left on the node; then released."""
    for i, key in enumerate(("k1", "k2", "k3")):
        eng.process(down("core", i, alertkey=key), i)
    eng.process(down("h1", 3), 3)
    eng.process(down("h2", 4), 4)
    assert parent_of(eng, "h1") == parent_of(eng, "h2") == "core:NodeDown:k3:"
    changes = eng.process(up("core", 5, alertkey="k1"), 5)
    assert kinds(changes, "h1") == kinds(changes, "h2") == []
    changes = eng.process(up("core", 6, alertkey="k3"), 6)
    assert kinds(changes, "h1") == kinds(changes, "h2") == ["alert.updated"]
    for node in ("h1", "h2"):
        assert (parent_of(eng, node), row(eng, node).suppressed_by) == ("core:NodeDown:k2:", NAME)
        assert row(eng, node).journal[-1].text.startswith("symptom of core:NodeDown:k2:: ")
    changes = eng.process(up("core", 7, alertkey="k2"), 7)
    assert kinds(changes, "h1") == ["alert.updated", "alert.unsuppressed"]
    assert (parent_of(eng, "h1"), row(eng, "h1").suppressed_by) == (None, None)


def test_reopened_symptom_keeps_its_open_root(eng: Engine) -> None:
    """A symptom that clears and reopens while its root is open goes back under that root,
    even if a newer alert opened at the same depth meanwhile."""
    eng.process(down("core", 0, alertkey="k1"), 0)
    eng.process(down("h1", 1), 1)
    eng.process(up("h1", 2), 2)
    eng.process(down("core", 3, alertkey="k2"), 3)
    changes = eng.process(down("h1", 4), 4)
    assert parent_of(eng, "h1") == "core:NodeDown:k1:"
    assert "alert.suppressed" not in kinds(changes, "h1")


def test_expiring_roots_move_each_symptom_at_most_once(ruleset: Callable[[str], RuleSet]) -> None:
    """The storm in small: a root and five symptoms open every second, each expiring after
    10s. The oldest root is always the next to expire; symptoms hang under the newest, so
    each moves at most once (not once per root that expires above it)."""
    eng = Engine(ruleset(RULES), delete_cleared_after=3600)
    hosts = ("h1", "h2", "h3", "h4", "agg-b")
    for t in range(60):
        feed(eng, down("core", t, alertkey=f"c{t}", expire_after="10s"))
        for n, node in enumerate(hosts):
            feed(eng, down(node, t + 0.1 * n, alertkey=f"s{t}", expire_after="10s"))
    symptoms = [r for r in eng.table.rows.values() if r.node != "core"]
    assert len(symptoms) == 300
    moves = [sum(e.text.startswith("symptom of") for e in r.journal) for r in symptoms]
    assert max(moves) == 2  # placed once, moved once when its root expired
    assert all(r.parent is not None and r.parent.startswith("core:") for r in symptoms)


def test_non_matching_and_unknown_nodes_take_no_part(eng: Engine) -> None:
    """Alerts outside `match`, or on nodes outside the graph, are left alone; a node only
    named in `depends_on` is part of the graph."""
    eng.process(down("core", 0), 0)
    eng.process(down("h1", 1, "DiskFull"), 1)
    eng.process(down("elsewhere", 2), 2)
    eng.process(down("unknown-pdu", 3), 3)
    eng.process(down("h4", 4), 4)
    assert row(eng, "h1", "DiskFull").parent is None
    assert parent_of(eng, "elsewhere") is None
    assert parent_of(eng, "h4") == "unknown-pdu:NodeDown::"  # both at the top: the newer wins
    assert eng.operators[NAME].size() == 3


def test_alert_that_stops_matching_is_released(engine: Callable[[str], Engine]) -> None:
    """A symptom whose labels move it out of `match` is released."""
    eng = engine(GRAPH + "correlate:\n  - {name: t, kind: topology, match: ['env=\"prod\"']}\n")
    eng.process(down("core", 0, labels={"env": "prod"}), 0)
    eng.process(down("h1", 1, labels={"env": "prod"}), 1)
    assert parent_of(eng, "h1") == "core:NodeDown::"
    eng.process(down("h1", 2, labels={"env": "test"}), 2)
    assert (parent_of(eng, "h1"), row(eng, "h1").suppressed_by) == (None, None)


def test_when_condition(engine: Callable[[str], Engine]) -> None:
    """`when:` narrows the alerts that take part, like `match`."""
    eng = engine(GRAPH + "correlate:\n  - {name: t, kind: topology, when: 'severity >= 4'}\n")
    eng.process(down("core", 0), 0)
    eng.process(down("h1", 1, severity="warning"), 1)
    eng.process(down("h2", 2), 2)
    assert parent_of(eng, "h1") is None
    assert parent_of(eng, "h2") == "core:NodeDown::"


def test_deleted_rows_leave_no_state(ruleset: Callable[[str], RuleSet]) -> None:
    """Cleared rows are deleted after the grace period and forgotten by the rule."""
    eng = Engine(ruleset(RULES), delete_cleared_after=10)
    eng.process(down("core", 0), 0)
    eng.process(down("h1", 1), 1)
    eng.process(up("h1", 2), 2)
    eng.process(up("core", 3), 3)
    eng.tick(100)
    assert len(eng.table) == 0
    assert eng.operators[NAME].size() == 0
    eng.process(down("h1", 101), 101)
    assert parent_of(eng, "h1") is None


def test_cap_refuses_new_alerts(engine: Callable[[str], Engine]) -> None:
    """Past `max_alerts` tracked alerts, new ones take no part and the cap hit is counted."""
    eng = engine(RULES + "    max_alerts: 1\n")
    eng.process(down("core", 0), 0)
    eng.process(down("h1", 1), 1)
    assert parent_of(eng, "h1") is None
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 1


def test_cap_hit_counts_a_refused_row_once_per_episode(engine: Callable[[str], Engine]) -> None:
    """At the cap, a refused row's updates are refused silently; a reopen counts again."""
    eng = engine(RULES + "    max_alerts: 1\n")
    feed(eng, down("core", 0))
    feed(eng, down("h1", 1))
    for at in range(2, 6):
        feed(eng, down("h1", at, summary=f"still down ({at})"))  # `updated`, still refused
    assert row(eng, "h1").tally == 5 and parent_of(eng, "h1") is None
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 1
    feed(eng, up("h1", 10))
    feed(eng, down("h1", 11))
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 2


def test_reload_keeps_state_unless_the_graph_changes(ruleset: Callable[[str], RuleSet]) -> None:
    """Same rule and graph: state kept. A changed graph is a changed definition: rebuilt."""
    eng = Engine(ruleset(RULES))
    eng.process(down("core", 0), 0)
    eng.process(down("h1", 1), 1)
    old = eng.operators[NAME]
    eng.load(ruleset(RULES))
    assert eng.operators[NAME] is old
    eng.load(ruleset(RULES.replace("h2: {depends_on: [agg-a]}", "h2: {depends_on: [agg-b]}")))
    assert eng.operators[NAME] is not old


def test_graph_closure() -> None:
    """Ancestors are transitive and most upstream first; unknown nodes are leaves at the top."""
    graph = compile_graph({"h": ["a", "x"], "a": ["c"], "c": [], "b": ["c"]})
    assert graph.upstream["h"] == ("c", "x", "a")
    assert graph.downstream["c"] == ("a", "b", "h")
    assert graph.depth == {"c": 0, "x": 0, "a": 1, "b": 1, "h": 2}
    assert "c" not in graph.upstream and "h" not in graph.downstream


def test_find_cycles() -> None:
    """Cycles are found, self-loops included; a DAG has none."""
    assert find_cycles({"a": ["b"], "b": ["c"], "c": []}) == []
    assert find_cycles({"a": ["b"], "b": ["a"]}) == [["a", "b", "a"]]
    assert find_cycles({"s": ["s"]}) == [["s", "s"]]


def test_cycle_is_reported_at_the_topology_node(tmp_path: Path) -> None:
    """A dependency cycle is an error at the file:line:col of a node on it."""
    (tmp_path / "a.yaml").write_text(
        "topology:\n  x: {depends_on: [nowhere]}\n  a: {depends_on: [b]}\n"
    )
    (tmp_path / "b.yaml").write_text(
        "topology:\n  b:\n    depends_on: [c]\n  c: {depends_on: [a]}\n"
    )
    with pytest.raises(RuleSetError) as info:
        load_rules(tmp_path)
    (error,) = info.value.errors
    assert (Path(error.file).name, error.line, error.col) == ("a.yaml", 3, 3)
    assert error.message == "topology: dependency cycle a -> b -> c -> a"


def test_unknown_nodes_are_fine(tmp_path: Path) -> None:
    """`depends_on` may name nodes that are not declared: they are leaves at the top."""
    (tmp_path / "a.yaml").write_text("topology:\n  h1: {depends_on: [undeclared]}\n")
    assert load_rules(tmp_path).env.topology == {"h1": ("undeclared",)}


def test_topology_and_inhibit_hold_one_alert_together(engine: Callable[[str], Engine]) -> None:
    """Two rules suppress one symptom: releasing one leaves the other's suppression."""
    eng = engine(
        RULES
        + """
inhibit_rules:
  - name: maint
    source_matchers: ['alertname="Maintenance"']
    target_matchers: ['alertname="NodeDown"']
"""
    )
    eng.process(down("core", 0), 0)
    eng.process(down("h1", 1), 1)
    eng.process(down("ops", 2, "Maintenance"), 2)
    assert row(eng, "h1").suppressed_by == NAME
    assert row(eng, "core").suppressed_by == "maint"
    changes = eng.process(up("core", 3), 3)
    assert kinds(changes, "h1") == ["alert.updated", "alert.updated"]
    assert (parent_of(eng, "h1"), row(eng, "h1").suppressed_by) == (None, "maint")


def test_large_fan_out(ruleset: Callable[[str], RuleSet]) -> None:
    """Thousands of hosts below one root: adopted when it opens, released when it clears."""
    hosts = "\n".join(f"  n{i}: {{depends_on: [agg-a]}}" for i in range(2000))
    eng = Engine(ruleset(RULES.replace("topology:\n", "topology:\n" + hosts + "\n")))
    for i in range(2000):
        eng.process(down(f"n{i}", i), i)
    changes = eng.process(down("core", 3000), 3000)
    assert sum(c.kind == "alert.suppressed" for c in changes) == 2000
    assert parent_of(eng, "n1999") == "core:NodeDown::"
    changes = eng.process(up("core", 3001), 3001)
    assert sum(c.kind == "alert.unsuppressed" for c in changes) == 2000


def test_changed_graph_rebuilds_from_the_table(ruleset: Callable[[str], RuleSet]) -> None:
    """A rule rebuilt by a reload learns the open alerts at once, roots first, without a
    flap; a symptom whose root is no longer upstream in the new graph is released."""
    eng = Engine(ruleset(RULES))
    for i, node in enumerate(("core", "h1", "h2")):
        eng.process(down(node, i), i)
    moved = RULES.replace("h2: {depends_on: [agg-a]}", "h2: {depends_on: [elsewhere]}")
    eng.load(ruleset(moved))
    changes = eng.process(down("h4", 5), 5)
    assert kinds(changes, "h1") == []
    assert kinds(changes, "h2") == ["alert.updated", "alert.unsuppressed"]
    assert (parent_of(eng, "h2"), row(eng, "h2").suppressed_by) == (None, None)
    assert parent_of(eng, "h4") == "core:NodeDown::"
    changes = eng.process(up("core", 6), 6)
    assert kinds(changes, "h1") == ["alert.updated", "alert.unsuppressed"]


def test_rebuild_places_symptoms_as_live_processing_did(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """A rule added by a reload rebuilds from the table, upstream first, without a flap,
    and ends with the parents the rule would have set had it been running all along:
    an older symptom keeps the older root, one seen before any root gets the first."""
    events = [
        down("agg-a", 0),
        down("h1", 1),
        down("core", 2, alertkey="k1"),
        down("h2", 3),
        down("core", 4, alertkey="k2"),
        down("h3", 5),
        down("agg-b", 6),
    ]
    expected = {
        "agg-a": "core:NodeDown:k1:",
        "h1": "core:NodeDown:k1:",
        "h2": "core:NodeDown:k1:",
        "h3": "core:NodeDown:k2:",
        "agg-b": "core:NodeDown:k2:",
    }
    live = Engine(ruleset(RULES))
    rebuilt = Engine(ruleset(GRAPH))
    for event in events:
        feed(live, event)
        feed(rebuilt, event)
    assert all(parent_of(rebuilt, node) is None for node in expected)
    rebuilt.load(ruleset(RULES))
    changes = rebuilt.tick(10)
    for node, parent in expected.items():
        assert parent_of(live, node) == parent, node
        assert (parent_of(rebuilt, node), row(rebuilt, node).suppressed_by) == (parent, NAME)
        assert kinds(changes, node) == ["alert.updated", "alert.suppressed"], node


def test_changed_rule_keeps_the_parents_it_set(ruleset: Callable[[str], RuleSet]) -> None:
    """A reload that changes the graph rebuilds the rule; a symptom whose root is still one
    of the candidates keeps it (no change), even where serial order would say otherwise."""
    eng = Engine(ruleset(RULES))
    eng.process(down("core", 0, alertkey="k1"), 0)
    eng.process(down("h1", 1), 1)
    eng.process(down("core", 2, alertkey="k2"), 2)
    eng.process(up("core", 3, alertkey="k1"), 3)  # h1 moves under k2
    eng.process(down("core", 4, alertkey="k1"), 4)  # reopened: the newest joiner
    eng.process(down("h2", 5), 5)
    assert (parent_of(eng, "h1"), parent_of(eng, "h2")) == (
        "core:NodeDown:k2:",
        "core:NodeDown:k1:",
    )
    old = eng.operators[NAME]
    eng.load(ruleset(RULES.replace("  core: {}\n", "  core: {}\n  spare: {depends_on: [core]}\n")))
    changes = eng.tick(6)
    assert eng.operators[NAME] is not old
    assert kinds(changes, "h1") == kinds(changes, "h2") == []
    assert (parent_of(eng, "h1"), parent_of(eng, "h2")) == (
        "core:NodeDown:k2:",
        "core:NodeDown:k1:",
    )
    assert row(eng, "h1").suppressed_by == row(eng, "h2").suppressed_by == NAME
    eng.process(up("core", 7, alertkey="k2"), 7)  # the rebuilt state knows who is whose
    assert parent_of(eng, "h1") == "core:NodeDown:k1:"


def test_engines_sharing_a_rule_set_do_not_share_state(ruleset: Callable[[str], RuleSet]) -> None:
    """Each engine running the rule rebuilds its state from its own table."""
    rules = ruleset(RULES)
    first = Engine(rules)
    first.process(down("h1", 0), 0)
    second = Engine(rules)
    second.process(down("core", 0), 0)
    second.process(down("h1", 1), 1)
    assert parent_of(second, "h1") == "core:NodeDown::"


def test_a_group_parent_is_given_back_when_the_root_leaves(
    engine: Callable[[str], Engine],
) -> None:
    """h1 and h2 are counted by a threshold first (parent: its alert); core's alert takes them
    as symptoms; when core clears, the threshold alert, still open, is their parent again."""
    eng = engine(
        RULES
        + """  - name: outage
    kind: threshold
    match: ['alertgroup="Unreachable"']
    count: 2
    window: 5m
"""
    )
    feed(eng, down("h1", 0, "Unreachable"))
    feed(eng, down("h2", 1, "Unreachable"))
    assert row(eng, "h1", "Unreachable").parent == "correlator:outage"
    feed(eng, down("core", 2))
    assert row(eng, "h1", "Unreachable").parent == "core:NodeDown::"
    feed(eng, up("core", 10))
    h1 = row(eng, "h1", "Unreachable")
    assert (h1.parent, h1.suppressed_by) == ("correlator:outage", None)
    assert h1.journal[-2].text.endswith("parent back to correlator:outage")
    assert eng.operators[NAME]._before == {}  # type: ignore[attr-defined]
