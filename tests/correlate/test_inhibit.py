"""`inhibit_rules`: an open source alert suppresses matching targets with equal labels."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from correlator.correlate.inhibit import InhibitRule
from correlator.engine import Engine
from correlator.errors import RuleSetError
from correlator.model import Alert, Change
from correlator.ruleset.loader import RuleSet, load_rules

RULES = """
inhibit_rules:
  - name: power-mutes-warnings
    source_matchers: ['alertname="SitePower"', 'severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [site]
"""
NAME = "power-mutes-warnings"


def ev(
    node: str, group: str, at: float, *, site: str | None = "ams1", **extra: Any
) -> dict[str, Any]:
    labels = {} if site is None else {"site": site}
    return {"node": node, "alertgroup": group, "labels": labels, "timestamp": at, **extra}


def power(at: float, site: str = "ams1", **extra: Any) -> dict[str, Any]:
    return ev("pdu-1", "SitePower", at, site=site, severity="critical", **extra)


def warning(node: str, at: float, site: str | None = "ams1", **extra: Any) -> dict[str, Any]:
    return ev(node, "LinkFlap", at, site=site, severity=extra.pop("severity", "warning"), **extra)


def row(eng: Engine, identifier: str) -> Alert:
    alert = eng.table.get(identifier)
    assert alert is not None, identifier
    return alert


def kinds(changes: list[Change], identifier: str) -> list[str]:
    return [c.kind for c in changes if c.alert is not None and c.alert.identifier == identifier]


@pytest.fixture
def eng(engine: Callable[[str], Engine]) -> Engine:
    return engine(RULES)


def test_source_suppresses_targets_with_equal_labels(eng: Engine) -> None:
    """While the source is open, a warning in the same site is suppressed; another site is not."""
    eng.process(power(0), 0)
    changes = eng.process(warning("sw-1", 10), 10)
    eng.process(warning("sw-2", 11, site="fra1"), 11)
    assert kinds(changes, "sw-1:LinkFlap::") == ["alert.created", "alert.suppressed"]
    assert row(eng, "sw-1:LinkFlap::").suppressed_by == NAME
    assert row(eng, "sw-2:LinkFlap::").suppressed_by is None
    note = row(eng, "sw-1:LinkFlap::").journal[-1]
    assert note.who == NAME
    assert "inhibited by pdu-1:SitePower::" in note.text and "site='ams1'" in note.text


def test_source_arriving_after_targets_suppresses_them(eng: Engine) -> None:
    """Order does not matter: targets already open are suppressed when the source opens."""
    eng.process(warning("sw-1", 0), 0)
    eng.process(warning("sw-2", 1), 1)
    changes = eng.process(power(5), 5)
    assert kinds(changes, "sw-1:LinkFlap::") == ["alert.suppressed"]
    assert kinds(changes, "sw-2:LinkFlap::") == ["alert.suppressed"]


def test_source_clearing_releases_targets(eng: Engine) -> None:
    """When the source clears, its targets are released and say why."""
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    changes = eng.process(power(60, type="resolution"), 60)
    assert kinds(changes, "sw-1:LinkFlap::") == ["alert.unsuppressed"]
    target = row(eng, "sw-1:LinkFlap::")
    assert target.suppressed_by is None
    assert target.journal[-1].text.startswith("released: no open source alert left")


def test_source_reopening_suppresses_again(eng: Engine) -> None:
    """A source that clears and reopens suppresses its still-open targets again."""
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    eng.process(power(10, type="resolution"), 10)
    changes = eng.process(power(20), 20)
    assert kinds(changes, "sw-1:LinkFlap::") == ["alert.suppressed"]


def test_second_source_keeps_targets_suppressed(eng: Engine) -> None:
    """Two sources in one site: the targets are released only when the last one clears."""
    eng.process(power(0), 0)
    eng.process(ev("pdu-2", "SitePower", 1, severity="critical"), 1)
    eng.process(warning("sw-1", 2), 2)
    assert kinds(eng.process(power(10, type="resolution"), 10), "sw-1:LinkFlap::") == []
    assert row(eng, "sw-1:LinkFlap::").suppressed_by == NAME
    last = ev("pdu-2", "SitePower", 20, type="resolution")
    assert kinds(eng.process(last, 20), "sw-1:LinkFlap::") == ["alert.unsuppressed"]


def test_target_that_stops_matching_is_released(eng: Engine) -> None:
    """A warning escalated to critical is no longer a target and is released."""
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    changes = eng.process(warning("sw-1", 5, severity="critical"), 5)
    assert kinds(changes, "sw-1:LinkFlap::") == ["alert.updated", "alert.unsuppressed"]
    assert (
        row(eng, "sw-1:LinkFlap::")
        .journal[-1]
        .text.endswith("no longer matches the target matchers")
    )


def test_cleared_target_keeps_its_record_and_is_released_on_reopen(eng: Engine) -> None:
    """A target clearing under its source stays marked; reopened with no source, it is released."""
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    eng.process(warning("sw-1", 2, type="resolution"), 2)
    assert row(eng, "sw-1:LinkFlap::").suppressed_by == NAME
    eng.process(power(3, type="resolution"), 3)
    assert row(eng, "sw-1:LinkFlap::").suppressed_by == NAME
    changes = eng.process(warning("sw-1", 4), 4)
    assert kinds(changes, "sw-1:LinkFlap::") == ["alert.updated", "alert.unsuppressed"]


def test_deleted_target_is_forgotten(ruleset: Callable[[str], RuleSet]) -> None:
    """A deleted row leaves no state behind; a new row with its identifier starts fresh."""
    eng = Engine(ruleset(RULES), delete_cleared_after=10)
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    eng.process(warning("sw-1", 2, type="resolution"), 2)
    eng.process(power(3, type="resolution"), 3)
    eng.tick(100)
    assert eng.table.get("sw-1:LinkFlap::") is None
    assert eng.operators[NAME].size() == 0
    eng.process(warning("sw-1", 101), 101)
    assert row(eng, "sw-1:LinkFlap::").suppressed_by is None


def test_two_sided_alerts_do_not_inhibit_themselves(engine: Callable[[str], Engine]) -> None:
    """As in Alertmanager: an alert matching both sides is not inhibited by itself or its peers,
    but a source matching only the source side inhibits it."""
    eng = engine(
        """
        inhibit_rules:
          - name: any-major
            source_matchers: ['severity>=4']
            target_matchers: ['severity>=2']
            equal: [site]
        """
    )
    eng.process(ev("a", "X", 0, severity="major"), 0)
    eng.process(ev("b", "Y", 1, severity="critical"), 1)
    assert row(eng, "a:X::").suppressed_by is None
    assert row(eng, "b:Y::").suppressed_by is None
    eng.process(ev("c", "Z", 2, severity="warning"), 2)
    assert row(eng, "c:Z::").suppressed_by == "any-major"


def test_one_sided_source_inhibits_two_sided_target(engine: Callable[[str], Engine]) -> None:
    """A source that does not match the target side inhibits alerts matching both sides;
    when it clears, the two-sided alerts left do not inhibit each other."""
    eng = engine(
        """
        inhibit_rules:
          - name: r
            source_matchers: ['labels.role="power"']
            target_matchers: ['severity>=2']
            equal: [site]
        """
    )
    power_labels = {"role": "power", "site": "s"}
    eng.process(ev("ups", "OnBattery", 0, severity=1, labels=power_labels), 0)
    eng.process(ev("pdu", "Overload", 1, severity="minor", labels=power_labels), 1)
    eng.process(ev("gen", "Fuel", 2, severity="major", labels=power_labels), 2)
    assert row(eng, "pdu:Overload::").suppressed_by == "r"
    assert row(eng, "gen:Fuel::").suppressed_by == "r"
    assert row(eng, "ups:OnBattery::").suppressed_by is None
    eng.process(ev("ups", "OnBattery", 3, type="resolution", labels=power_labels), 3)
    assert row(eng, "pdu:Overload::").suppressed_by is None
    assert row(eng, "gen:Fuel::").suppressed_by is None


def test_equal_label_missing_on_both_sides_counts_as_equal(eng: Engine) -> None:
    """A missing `equal` label reads as "": missing on both is equal, missing on one is not."""
    eng.process(power(0, site=None), 0)
    eng.process(warning("sw-1", 1, site=None), 1)
    eng.process(warning("sw-2", 2, site="ams1"), 2)
    assert row(eng, "sw-1:LinkFlap::").suppressed_by == NAME
    assert row(eng, "sw-2:LinkFlap::").suppressed_by is None


def test_equal_resolves_fields_and_alertname(engine: Callable[[str], Engine]) -> None:
    """`equal` names resolve like matchers: fields, then `alertname`, then labels."""
    eng = engine(
        """
        inhibit_rules:
          - name: same-node-and-name
            source_matchers: ['severity="critical"']
            target_matchers: ['severity="warning"']
            equal: [node, alertname]
        """
    )
    eng.process(ev("h1", "Disk", 0, severity="critical"), 0)
    eng.process(ev("h1", "Disk", 1, severity="warning", alertkey="sda"), 1)
    eng.process(ev("h1", "Cpu", 2, severity="warning"), 2)
    eng.process(ev("h2", "Disk", 3, severity="warning"), 3)
    assert row(eng, "h1:Disk:sda:").suppressed_by == "same-node-and-name"
    assert row(eng, "h1:Cpu::").suppressed_by is None
    assert row(eng, "h2:Disk::").suppressed_by is None


def test_pasted_alertmanager_block_gets_a_stable_name(tmp_path: Path) -> None:
    """An unnamed legacy block works, and its generated name survives a reload and a move."""
    block = """
    inhibit_rules:
      - source_match:
          severity: 'critical'
        target_match_re:
          severity: 'warning|info'
        equal: ['alertname', 'site']
    """
    (tmp_path / "a.yaml").write_text(textwrap.dedent(block))
    first = load_rules(tmp_path)
    (tmp_path / "a.yaml").rename(tmp_path / "b.yaml")
    second = load_rules(tmp_path)
    (name,) = [op.name for op in first.build_operators()]
    assert name.startswith("inhibit-")
    assert [op.name for op in second.build_operators()] == [name]
    eng = Engine(first)
    eng.process(ev("h1", "Latency", 0, severity="critical"), 0)
    eng.process(ev("h2", "Latency", 1, severity="warning"), 1)
    assert row(eng, "h2:Latency::").suppressed_by == name
    eng.load(second)
    assert eng.operators[name].size() == 2  # same name and definition: state kept


def test_identical_unnamed_blocks_are_a_duplicate(tmp_path: Path) -> None:
    """Two identical pasted blocks would share a name: reported like any duplicate rule."""
    block = "  - source_match: {severity: critical}\n    target_match: {severity: warning}\n"
    (tmp_path / "a.yaml").write_text("inhibit_rules:\n" + block + block)
    with pytest.raises(RuleSetError) as info:
        load_rules(tmp_path)
    (error,) = info.value.errors
    assert (error.line, error.col) == (4, 5)
    assert "duplicate rule name 'inhibit-" in error.message


def test_inhibit_names_are_unique_with_other_rules(tmp_path: Path) -> None:
    """An inhibit rule's name clashes with a correlate rule of the same name."""
    (tmp_path / "a.yaml").write_text(
        "correlate:\n  - {name: x, kind: clear, problem: ['a=\"1\"'], resolution: ['a=\"2\"'], on: [node]}\n"
        "inhibit_rules:\n  - name: x\n    source_matchers: ['a=\"1\"']\n"
    )
    with pytest.raises(RuleSetError, match="duplicate rule name 'x'"):
        load_rules(tmp_path)


def test_several_rules_suppress_one_target(engine: Callable[[str], Engine]) -> None:
    """Each rule is one suppressor; the target is released when none holds any more."""
    ups = "  - {source_match: {alertname: UPSOnBattery}, target_match: {severity: warning}}\n"
    eng = engine(RULES.replace("    equal: [site]\n", "    equal: [site]\n" + ups))
    eng.process(power(0), 0)
    eng.process(ev("ups-1", "UPSOnBattery", 1, severity="major"), 1)
    eng.process(warning("sw-1", 2), 2)
    target = row(eng, "sw-1:LinkFlap::")
    assert target.suppressed_by == NAME
    eng.process(power(3, type="resolution"), 3)
    assert target.suppressed_by is not None and target.suppressed_by.startswith("inhibit-")
    eng.process(ev("ups-1", "UPSOnBattery", 4, type="resolution"), 4)
    assert target.suppressed_by is None


def test_matcher_lines_in_alertmanager_form() -> None:
    """One `*_matchers` entry may hold several matchers, in braces or not."""
    rule = InhibitRule.model_validate(
        {"source_matchers": ['{alertname="A", severity="critical"}'], "target_matchers": "b=1"}
    )
    assert [m.name for m in rule.side("source")] == ["alertname", "severity"]
    assert [m.value for m in rule.side("target")] == ["1"]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            "inhibit_rules:\n  - source_matchers:\n      - 'severity=\"critical\"'\n"
            "      - 'site=~\"(\"'\n    equal: [site]\n",
            (4, 9),
            "bad regex",
        ),
        (
            "inhibit_rules:\n  - source_match_re:\n      alertname: 'Power.*'\n"
            "      site: 'lis(1'\n    target_match: {severity: warning}\n",
            (4, 13),
            "source_match_re.site: bad regex 'lis(1'",
        ),
    ],
)
def test_bad_matcher_is_reported_at_its_line(
    tmp_path: Path, text: str, where: tuple[int, int], message: str
) -> None:
    """A bad matcher inside a pasted block (a line, or a legacy map entry) points at itself."""
    (tmp_path / "a.yaml").write_text(text)
    with pytest.raises(RuleSetError) as info:
        load_rules(tmp_path)
    (error,) = info.value.errors
    assert (error.line, error.col) == where
    assert message in error.message


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    """A typo in a key is reported, not ignored."""
    (tmp_path / "a.yaml").write_text("inhibit_rules:\n  - source_matcher: ['a=\"1\"']\n")
    with pytest.raises(RuleSetError, match="unknown key 'source_matcher'"):
        load_rules(tmp_path)


def test_kind_inhibit_under_correlate(engine: Callable[[str], Engine]) -> None:
    """The same rule may be written under `correlate:` with `kind: inhibit`."""
    eng = engine(
        """
        correlate:
          - name: c
            kind: inhibit
            source_matchers: ['alertname="SitePower"']
            target_matchers: ['severity="warning"']
            equal: [site]
        """
    )
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    assert row(eng, "sw-1:LinkFlap::").suppressed_by == "c"


def test_cap_refuses_new_alerts(engine: Callable[[str], Engine]) -> None:
    """Past `max_alerts` tracked alerts, new ones are not tracked and the cap hit is counted."""
    eng = engine(RULES + "    max_alerts: 1\n")
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    assert row(eng, "sw-1:LinkFlap::").suppressed_by is None
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 1


def test_cap_hit_counts_a_refused_row_once_per_episode(engine: Callable[[str], Engine]) -> None:
    """At the cap, a refused row's updates are refused silently; a reopen counts again."""
    eng = engine(RULES + "    max_alerts: 1\n")
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    for at in range(2, 6):
        eng.process(warning("sw-1", at, summary=f"flapping ({at})"), at)  # `updated`
    assert row(eng, "sw-1:LinkFlap::").tally == 5
    assert row(eng, "sw-1:LinkFlap::").suppressed_by is None
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 1
    eng.process(warning("sw-1", 10, type="resolution"), 10)
    eng.process(warning("sw-1", 11), 11)
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 2


def test_severity_regex_uses_names(engine: Callable[[str], Engine]) -> None:
    """`severity=~"warning|minor"` matches by name (Alertmanager's view) and by number."""
    eng = engine(
        """
        inhibit_rules:
          - name: r
            source_matchers: ['alertname="SitePower"']
            target_matchers: ['severity=~"warning|minor"', 'severity!~"5"']
            equal: [site]
        """
    )
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1, severity="minor"), 1)
    eng.process(warning("sw-2", 2, severity="major"), 2)
    assert row(eng, "sw-1:LinkFlap::").suppressed_by == "r"
    assert row(eng, "sw-2:LinkFlap::").suppressed_by is None


def test_changed_rule_rebuilds_from_the_table(ruleset: Callable[[str], RuleSet]) -> None:
    """A rule changed by a reload learns the open alerts at once: no flap at the reload,
    and the old version's suppressions are released when the source clears."""
    eng = Engine(ruleset(RULES))
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    old = eng.operators[NAME]
    eng.load(ruleset(RULES + "    max_alerts: 500\n"))
    assert kinds(eng.process(warning("sw-2", 2), 2), "sw-1:LinkFlap::") == []
    assert eng.operators[NAME] is not old and eng.operators[NAME].size() == 3
    changes = eng.process(power(3, type="resolution"), 3)
    assert kinds(changes, "sw-1:LinkFlap::") == ["alert.unsuppressed"]
    assert kinds(changes, "sw-2:LinkFlap::") == ["alert.unsuppressed"]


def test_engines_sharing_a_rule_set_do_not_share_state(ruleset: Callable[[str], RuleSet]) -> None:
    """Each engine running the rule rebuilds its index from its own table."""
    rules = ruleset(RULES)
    first = Engine(rules)
    first.process(power(0), 0)
    second = Engine(rules)
    second.process(power(0), 0)
    second.process(warning("sw-1", 1), 1)
    assert row(second, "sw-1:LinkFlap::").suppressed_by == NAME


def test_legacy_values_and_quoting() -> None:
    """YAML numbers in legacy maps are label text; escaped quotes do not end a value;
    an empty matcher line is an error."""
    rule = InhibitRule.model_validate(
        {"source_match": {"code": 500, "paged": True}, "target_matchers": [r'msg="a\",b"']}
    )
    assert [(m.name, m.value) for m in rule.side("source")] == [("code", "500"), ("paged", "true")]
    assert [m.value for m in rule.side("target")] == ['a",b']
    with pytest.raises(ValueError, match="empty matcher"):
        InhibitRule.model_validate({"source_matchers": ["{}"]})


def test_a_held_target_reopening_as_no_target_is_released(engine: Callable[[str], Engine]) -> None:
    """Cleared while muted it stays held; reopening as a critical (no target) releases it."""
    eng = engine(RULES)
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    eng.process(warning("sw-1", 2, type="resolution"), 2)
    assert row(eng, "sw-1:LinkFlap::").suppressed_by == NAME
    eng.process(warning("sw-1", 3, severity="critical"), 3)
    reopened = row(eng, "sw-1:LinkFlap::")
    assert (reopened.status, reopened.suppressed_by) == ("open", None)
    assert reopened.journal[-1].text == "released: no longer matches the target matchers"


def test_an_acknowledgement_is_a_change_of_membership(engine: Callable[[str], Engine]) -> None:
    """With `status="open"` among the target matchers, acknowledging a muted target releases it."""
    eng = engine(
        RULES.replace(
            "target_matchers: ['severity=\"warning\"']",
            "target_matchers: ['severity=\"warning\"', 'status=\"open\"']",
        )
    )
    eng.process(power(0), 0)
    eng.process(warning("sw-1", 1), 1)
    assert row(eng, "sw-1:LinkFlap::").suppressed_by == NAME
    eng.acknowledge("sw-1:LinkFlap::", "alice", 2)
    assert row(eng, "sw-1:LinkFlap::").suppressed_by is None


def test_pasted_lines_load_and_match_as_in_alertmanager(engine: Callable[[str], Engine]) -> None:
    """Common `alertmanager.yml` lines work as pasted: backslashes in regexes are kept,
    `severity!="info"` compares the name, and a label named like a field is the label."""
    eng = engine(
        r"""
        inhibit_rules:
          - name: r
            source_matchers: ['alertname="NodeDown"', 'ip=~"10\.0\..*"']
            target_matchers: ['instance=~"web\d+"', 'severity!="info"', 'type="db"']
            equal: [site]
        """
    )
    eng.process(
        ev("n1", "NodeDown", 0, severity="critical", labels={"site": "s", "ip": "10.0.1.9"}), 0
    )
    web = {"site": "s", "instance": "web12", "type": "db"}
    eng.process(ev("a", "Slow", 1, severity="warning", labels=web), 1)
    eng.process(ev("b", "Slow", 2, severity="info", labels={**web, "severity": "info"}), 2)
    eng.process(ev("c", "Slow", 3, severity="warning", labels={**web, "instance": "webx"}), 3)
    eng.process(ev("d", "Slow", 4, severity="warning", labels={**web, "type": "cache"}), 4)
    assert row(eng, "a:Slow::").suppressed_by == "r"
    assert [row(eng, f"{n}:Slow::").suppressed_by for n in "bcd"] == [None, None, None]


def test_legacy_maps_use_the_label_view(engine: Callable[[str], Engine]) -> None:
    """`source_match`/`target_match_re` and `equal` read labels first, then fields as text,
    and compare strings case-sensitively, as Alertmanager does."""
    eng = engine(
        r"""
        inhibit_rules:
          - source_match: {severity: critical, type: network}
            target_match_re: {severity: 'warning|info', instance: 'sw\d+'}
            equal: [type, cluster]
        """
    )
    net = {"type": "network", "cluster": "c1"}
    eng.process(ev("core", "Down", 0, severity="critical", labels=net), 0)
    eng.process(ev("e1", "Port", 1, severity="warning", labels={**net, "instance": "sw1"}), 1)
    eng.process(ev("e2", "Port", 2, severity="warning", labels={**net, "instance": "SW2"}), 2)
    eng.process(
        ev("e3", "Port", 3, severity="warning", labels={"instance": "sw3", "cluster": "c1"}), 3
    )
    assert row(eng, "e1:Port::").suppressed_by is not None
    assert row(eng, "e2:Port::").suppressed_by is None  # case-sensitive regex
    # equal `type`: e3 has no such label, so its field "problem" vs the source's "network"
    assert row(eng, "e3:Port::").suppressed_by is None


def test_refused_regex_is_reported_by_check(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """`correlator check` names the file, line and column of each regex RE2 refuses, and
    RE2's own logging stays off stderr."""
    from correlator.cli import main

    (tmp_path / "a.yaml").write_text(
        "inhibit_rules:\n  - source_matchers: ['node=~\"(a)\\\\1\"']\n"
        "    target_match_re: {node: 'a(?=b)'}\n"
    )
    assert main(["check", str(tmp_path)]) == 1
    out, err = capfd.readouterr()
    lines = sorted(out.splitlines())
    assert lines[0].startswith(f"{tmp_path / 'a.yaml'}:2:23: inhibit_rules[0].source_matchers[0]")
    assert "bad regex" in lines[0] and "backreferences" in lines[0]
    assert lines[1].startswith(f"{tmp_path / 'a.yaml'}:3:29: inhibit_rules[0].target_match_re.node")
    assert "lookaround" in lines[1]
    assert err == ""
