"""Engine-level behaviour: reload keeps state of unchanged rules, templates and CEL caching."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.ruleset.loader import RuleSet, load_rules
from correlator.ruleset.templates import Template

CLEAR = """
correlate:
  - name: generic
    kind: clear
    problem: ['alertgroup="Down"']
    resolution: ['alertgroup="Up"']
    on: [node]
"""


def _rules(tmp_path: Path, text: str) -> Path:
    (tmp_path / "r.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def test_reload_keeps_state_of_unchanged_rules(tmp_path: Path) -> None:
    """A rule with the same name and definition keeps its state across a reload."""
    engine = Engine(load_rules(_rules(tmp_path, CLEAR)))
    engine.process({"node": "h1", "alertgroup": "Down", "timestamp": 1}, 1)
    before = engine.operators["generic"]
    engine.load(load_rules(_rules(tmp_path, CLEAR)))
    assert engine.operators["generic"] is before
    engine.process({"node": "h1", "alertgroup": "Up", "type": "resolution", "timestamp": 2}, 2)
    row = engine.table.get("h1:Down::")
    assert row is not None and row.status == "cleared"


def test_reload_restarts_changed_rules_empty(tmp_path: Path) -> None:
    """A changed definition starts with empty state; the alert table is kept."""
    engine = Engine(load_rules(_rules(tmp_path, CLEAR)))
    engine.process({"node": "h1", "alertgroup": "Down", "timestamp": 1}, 1)
    engine.load(load_rules(_rules(tmp_path, CLEAR.replace("on: [node]", "on: [node, alertkey]"))))
    assert engine.operators["generic"].size() == 0
    assert len(engine.table) == 1


def test_memoized_template_matches_jinja() -> None:
    """A memoized template renders the same as Jinja2 for every distinct input."""
    template = Template("{{ 'resolution' if raw.state == 'up' else 'problem' }}", prefix="raw")
    assert [template.render({"state": s}) for s in ("up", "down", "up", None)] == [
        "resolution",
        "problem",
        "resolution",
        "problem",
    ]
    looped = Template("{% for m in members %}{{ m }},{% endfor %}")
    assert looped.render({"members": ["a", "b"]}) == "a,b,"
    assert looped.render({"members": ["c"]}) == "c,"


@pytest.mark.parametrize(
    "source",
    [
        "{{ count }} hosts down in {{ group.site }}",
        "{{ count }} within 2m for labels.site={{ group['labels.site'] }}",
        "{{ raw.host }}: {{ raw.missing.deeper }}|{{ empty }}|{{ flag }}|{{ ratio }}\n",
        "{{ a }}{{ raw.a }}",
        "{{ members }} and {{ group }}",
    ],
)
def test_interpolated_text_renders_as_jinja_does(source: str) -> None:
    """Text with only `{{ path }}` references skips Jinja2, with the same output."""
    import jinja2

    from correlator.ruleset import templates
    from correlator.ruleset.templates import interpolation

    assert interpolation(jinja2.Environment().parse(source)) is not None  # the fast path
    template = Template(source, prefix="raw")
    context = {
        "count": 3,
        "group": {"site": "ams1", "labels.site": "ams1"},
        "host": "edge-1",
        "a": "x",
        "empty": None,
        "flag": True,
        "ratio": 0.5,
        "members": ["h1", "h2"],
    }
    jinja = templates._ENV.from_string(source).render({**context, "raw": context})
    assert template.render(context) == jinja


def test_method_calls_and_missing_names_in_templates() -> None:
    """Method calls on values work; chains on missing names render empty."""
    template = Template("{{ raw.instance.split(':')[0] }}|{{ raw.a.b.c }}", prefix="raw")
    assert template.render({"instance": "web-1:9100"}) == "web-1|"
    assert template.render({"instance": "db-2:9100"}) == "db-2|"


def test_cel_errors_do_not_match_and_are_counted(tmp_path: Path) -> None:
    """A CEL run-time error (missing key) means no match, not a crash."""
    rules = load_rules(
        _rules(
            tmp_path,
            """
            normalize:
              - name: cel
                when: 'raw.meta.pct > 90.0'
                fields: {node: "{{ raw.host }}", alertgroup: Hot}
            """,
        )
    )
    engine = Engine(rules)
    engine.process({"host": "h", "meta": {"pct": 95.0}}, 1)
    engine.process({"node": "n", "alertgroup": "Other", "meta": {}}, 1)
    assert engine.table.get("h:Hot::") is not None
    assert engine.table.get("n:Other::") is not None


INHIBIT = """
inhibit_rules:
  - name: power-inhibits-warnings
    source_matchers: ['alertgroup="PowerLoss"']
    target_matchers: ['severity="warning"']
    equal: [site]
"""


def _power_and_warning(engine: Engine) -> None:
    engine.process(
        {"node": "pdu", "alertgroup": "PowerLoss", "labels": {"site": "a"}, "timestamp": 1}, 1
    )
    engine.process(
        {"node": "sw", "alertgroup": "Flap", "severity": "warning", "labels": {"site": "a"},
         "timestamp": 2},
        2,
    )  # fmt: skip


def test_reload_releases_suppressions_of_removed_rules(tmp_path: Path) -> None:
    """A rule removed by a reload stops suppressing: its targets are released, noted."""
    engine = Engine(load_rules(_rules(tmp_path, INHIBIT)))
    _power_and_warning(engine)
    target = engine.table.get("sw:Flap::")
    assert target is not None and target.suppressed_by == "power-inhibits-warnings"
    engine.load(load_rules(_rules(tmp_path, "{}")))
    changes = engine.tick(3)
    assert [(c.kind, c.alert.identifier if c.alert else None) for c in changes] == [
        ("alert.unsuppressed", "sw:Flap::")
    ]
    assert target.suppressed_by is None
    assert "removed or changed by a reload" in target.journal[-1].text


def test_reload_of_changed_rule_keeps_what_it_claims(tmp_path: Path) -> None:
    """A changed rule that still holds a target re-claims it while starting: no flap."""
    engine = Engine(load_rules(_rules(tmp_path, INHIBIT)))
    _power_and_warning(engine)
    engine.load(load_rules(_rules(tmp_path, INHIBIT + "    max_alerts: 10\n")))
    assert engine.tick(3) == []
    target = engine.table.get("sw:Flap::")
    assert target is not None and target.suppressed_by == "power-inhibits-warnings"


def test_memo_keeps_equal_values_of_different_types_apart() -> None:
    """1, 1.0 and True are equal as dict keys but render differently."""
    template = Template("{{ raw.v | string }}", prefix="raw")
    assert [template.render({"v": v}) for v in (1, 1.0, True, 1)] == ["1", "1.0", "True", "1"]


def test_rules_reading_tally_see_tally_only_repeats(tmp_path: Path) -> None:
    """`tally>=3` becomes true on a repeat that changes no other field: inhibit and
    escalate act on it (rules that do not read tally never see bare repeats)."""
    rules = """
    inhibit_rules:
      - name: noisy-db-mutes-app
        source_matchers: ['alertgroup="DB"', 'tally>=3']
        target_matchers: ['alertgroup="App"']
    correlate:
      - name: repeat-offender
        kind: escalate
        match: ['alertgroup="DB"', 'tally>=3']
        after: 1m
        set: {severity: critical}
    """
    engine = Engine(load_rules(_rules(tmp_path, rules)))
    engine.process({"node": "app", "alertgroup": "App", "severity": "major", "timestamp": 0}, 0)
    for t in (0, 10, 20, 30, 40):
        engine.process({"node": "db", "alertgroup": "DB", "severity": "major", "timestamp": t}, t)
    engine.tick(1000)
    db, app = engine.table.get("db:DB::"), engine.table.get("app:App::")
    assert db is not None and app is not None
    assert app.suppressed_by == "noisy-db-mutes-app"
    assert db.severity == 5


PAIR_AND_ABSENCE = """
correlate:
  - name: batch-late
    kind: pair
    first: ['alertgroup="JobStarted"']
    second: ['alertgroup="JobFinished"']
    on: [node]
    within: 1m
  - name: heartbeat-lost
    kind: absence
    match: ['alertgroup="Heartbeat"']
    group_by: [node]
    for: 1m
"""


def _raise_both(eng: Engine) -> None:
    for event in (
        {"node": "etl-1", "alertgroup": "JobStarted", "type": "info", "timestamp": 0},
        {"node": "db-1", "alertgroup": "Heartbeat", "type": "info", "timestamp": 0},
    ):
        eng.process(event, 0)
    eng.tick(60)


def test_removed_rules_clear_the_alerts_they_raised(ruleset: Callable[[str], RuleSet]) -> None:
    """Nothing could clear them any more: a reload that removes the rule clears them, saying why."""
    eng = Engine(ruleset(PAIR_AND_ABSENCE))
    _raise_both(eng)
    pair, absence = "correlator:batch-late:etl-1", "correlator:heartbeat-lost:db-1"
    assert all(eng.table.rows[i].status == "open" for i in (pair, absence))
    eng.load(ruleset(PAIR_AND_ABSENCE.split("  - name: heartbeat-lost")[0]))
    changes = eng.tick(70)
    assert [(c.kind, c.alert.identifier) for c in changes if c.alert] == [
        ("alert.cleared", absence)
    ]
    assert eng.table.rows[pair].status == "open"  # its rule is still loaded
    note = eng.table.rows[absence].journal[-1]
    assert (note.who, note.text) == (
        "correlator",
        "cleared: rule heartbeat-lost that raised it was removed by a reload",
    )


def test_changed_rules_keep_the_alerts_they_raised(ruleset: Callable[[str], RuleSet]) -> None:
    """A changed rule's alerts stay open: its new version clears them when their condition ends."""
    eng = Engine(ruleset(PAIR_AND_ABSENCE))
    _raise_both(eng)
    eng.load(ruleset(PAIR_AND_ABSENCE.replace("for: 1m", "for: 2m").replace("in: 1m", "in: 2m")))
    assert not [c for c in eng.tick(70) if c.kind == "alert.cleared"]
    eng.process({"node": "db-1", "alertgroup": "Heartbeat", "type": "info", "timestamp": 80}, 80)
    assert eng.table.rows["correlator:heartbeat-lost:db-1"].status == "cleared"


RELOAD_RULES = """
inhibit_rules:
  - name: site-down
    source_matchers: ['alertgroup="SiteDown"']
    target_matchers: ['severity="minor"']
    equal: [site]
correlate:
  - name: planned
    kind: maintenance
    match: ['node="h1"']
    schedule: {start: 1970-01-01T00:00:00Z, end: 1970-01-01T01:00:00Z}
  - name: link-flap
    kind: flapping
    match: ['alertgroup="Ping"']
    changes: 3
  - name: page
    kind: escalate
    match: ['severity>=major']
    after: 10m
    set: {labels.priority: P1}
"""


def _ev(node: str, at: float, severity: str = "major", **extra: Any) -> dict[str, Any]:
    group = "SiteDown" if node == "r1" else "Ping"
    event = {"node": node, "alertgroup": group, "severity": severity, "timestamp": at}
    return {**event, "labels": {"site": "a"}, **extra}


def test_a_changed_rule_keeps_what_its_new_version_holds_for_the_first_time(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """Inhibit widened to majors, maintenance lengthened, topology given a new edge: each new
    version's holds survive its start, including alerts the old version did not hold."""
    eng = Engine(ruleset(RELOAD_RULES))
    eng.process(_ev("r1", 100, "critical"), 100)
    eng.process(_ev("h2", 101), 101)  # a major: not a target yet
    eng.process(_ev("h1", 102, "minor"), 102)  # inhibited and in maintenance
    wider = RELOAD_RULES.replace('severity="minor"', 'severity<="major"')
    eng.load(ruleset(wider.replace("T01:00:00Z", "T02:00:00Z")))
    changes = eng.tick(110)
    assert [(c.kind, c.alert.identifier) for c in changes if c.alert] == [
        ("alert.suppressed", "h2:Ping::")
    ]
    assert set(eng.suppressors(eng.table.rows["h1:Ping::"])) == {"site-down", "planned"}
    assert eng.suppressors(eng.table.rows["h2:Ping::"]) == ("site-down",)
    assert eng.table.rows["h1:Ping::"].annotations["send_resolved"] == "false"


def test_a_topology_rule_given_a_new_edge_holds_the_new_symptom(
    ruleset: Callable[[str], RuleSet],
) -> None:
    graph = "topology:\n  core: {}\n  h2: {depends_on: [core]}\n"
    rule = "correlate:\n  - name: uplink\n    kind: topology\n    match: ['alertgroup=\"Ping\"']\n"
    eng = Engine(ruleset(graph + rule))
    for node, at in (("core", 100), ("h1", 101), ("h2", 102)):
        eng.process(_ev(node, at), at)
    eng.load(ruleset(graph + "  h1: {depends_on: [core]}\n" + rule))
    eng.tick(110)
    h1 = eng.table.rows["h1:Ping::"]
    assert (h1.parent, h1.suppressed_by) == ("core:Ping::", "uplink")


def test_a_reload_releasing_a_hidden_maintenance_hold_resumes_escalation(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """h1 shows the inhibit; the maintenance hold that came behind it at 300 goes with its rule
    at 400: the release is published (`modified`), so the escalation clock, paused after 198 s,
    resumes and the alert escalates at 400 + 402."""
    rules = RELOAD_RULES.replace('severity="minor"', 'severity="major"')
    eng = Engine(ruleset(rules.replace("T00:00:00Z", "T00:05:00Z")))
    eng.process(_ev("r1", 100, "critical"), 100)
    eng.process(_ev("h1", 102), 102)
    eng.tick(300)
    row = eng.table.rows["h1:Ping::"]
    assert row.suppressed_by == "site-down" and eng.in_maintenance(row)
    without = (
        rules.split("  - name: planned")[0]
        + "  - name: link-flap"
        + rules.split("  - name: link-flap")[1]
    )
    eng.load(ruleset(without))
    assert [c.kind for c in eng.tick(400)] == ["alert.updated"]
    assert not eng.in_maintenance(row)
    eng.tick(801)
    assert "priority" not in row.labels
    eng.tick(802)
    assert row.labels["priority"] == "P1"


def test_a_reload_release_takes_the_rules_marks_with_it(ruleset: Callable[[str], RuleSet]) -> None:
    """Flapping's label and maintenance's no-recovery mark go with the holds they explained."""
    eng = Engine(ruleset(RELOAD_RULES))
    for at, kind in ((100, "problem"), (110, "resolution"), (120, "problem")):
        eng.process(_ev("h1", at, type=kind), at)
    row = eng.table.rows["h1:Ping::"]
    assert row.labels.get("flapping") == "true" and row.annotations.get("send_resolved") == "false"
    eng.load(ruleset("{}"))
    assert [c.kind for c in eng.tick(130)] == ["alert.updated", "alert.unsuppressed"]
    assert "flapping" not in row.labels and "send_resolved" not in row.annotations
    notes = [(j.who, j.text) for j in row.journal[-4:]]
    assert ("link-flap", "no longer flapping: the rule was removed or changed") in notes
    assert ("planned", "released open by a reload: its recovery will be notified") in notes


def test_rules_reading_parent_see_a_parent_being_set(ruleset: Callable[[str], RuleSet]) -> None:
    """Setting `parent` is dispatched only to rules that may read it: an escalation limited to
    parentless alerts stops when a threshold makes the alert a member (and rules that do not
    read `parent` are spared the dispatch)."""
    eng = Engine(
        ruleset("""
correlate:
  - name: outage
    kind: threshold
    match: ['alertgroup="Ping"']
    count: 2
    window: 5m
  - name: page
    kind: escalate
    match: ['severity>=major', 'parent=""']
    after: 10m
    set: {labels.priority: P1}
  - name: flap
    kind: flapping
    match: ['alertgroup="Ping"']
""")
    )
    assert [op.name for op in eng._link_watchers] == ["page"]
    eng.process(_ev("h1", 0), 0)
    eng.process(_ev("h2", 60), 60)  # the threshold is reached: both get the outage as parent
    row = eng.table.rows["h1:Ping::"]
    assert row.parent == "correlator:outage"
    eng.tick(601)
    assert "priority" not in row.labels  # its clock stopped when it got a parent


def test_a_template_failing_on_its_data_renders_the_error() -> None:
    """A Python error inside a template (division by zero) is shown, never raised."""
    template = Template("G{{ 10 // raw.d }}", prefix="raw")
    assert template.render({"d": 5}) == "G2"
    assert template.render({"d": 0}).startswith("<template error: ZeroDivisionError")


def test_context_value_agrees_with_the_context() -> None:
    """The lazy lookup incident titles use resolves every name as `alert_context` does."""
    from correlator.model import Alert
    from correlator.ruleset.paths import alert_context, alert_context_value

    alert = Alert("i", "n", "G", labels={"alertname": "A", "site": "x"}, annotations={"r": "u"})
    context = alert_context(alert)
    assert {name: alert_context_value(alert, name) for name in context} == context
    with pytest.raises(KeyError):
        alert_context_value(alert, "nope")


def test_a_label_action_sets_one_label_and_says_who(engine: Callable[[str], Engine]) -> None:
    eng = engine()
    eng.process({"node": "db1", "alertgroup": "Disk"}, 1.0)
    (change,) = eng.operate("label", "db1:Disk::", "servicenow", 2.0, "ticket=INC0010042")
    row = eng.table.rows["db1:Disk::"]
    assert (change.kind, row.labels) == ("alert.updated", {"ticket": "INC0010042"})
    assert (row.journal[-1].who, row.journal[-1].text) == ("servicenow", "label ticket=INC0010042")
    with pytest.raises(ValueError, match="name=value"):
        eng.operate("label", "db1:Disk::", "x", 3.0, "no-equals-sign")


def test_every_attribute_of_the_engine_is_a_slot(ruleset: Callable[[str], RuleSet]) -> None:
    """Its `__dict__` (kept for tests that patch a method) stays empty: an attribute the
    hot path reads lives in a slot (Python 3.11 reads dict attributes more slowly once an
    instance has 30 of them)."""
    rules = "correlate:\n  - {name: t, kind: threshold, count: 2, window: 1m}\n"
    engine = Engine(ruleset(rules))
    engine.process({"node": "a", "alertgroup": "b"}, 1.0)
    engine.tick(100.0)
    engine.load(ruleset(rules.replace("2", "3")))
    engine.tick(200.0)
    assert vars(engine) == {}
