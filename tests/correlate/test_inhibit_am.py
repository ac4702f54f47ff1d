"""Alertmanager's own inhibition cases, restated as correlator rules and alerts.

Each case comes from `inhibit/inhibit_test.go` (TestInhibitRuleHasEqual,
TestInhibitRuleMatches, TestInhibitRuleMatchers, TestInhibit) or
`test/with_api_v2/acceptance/inhibit_test.go` (TestInhibiting) in
prometheus/alertmanager, with the verdict Alertmanager gives. An Alertmanager
label set becomes an alert whose labels are that set; a resolved alert is a
cleared row. Each case runs in a fresh engine, as `Mutes` is asked in isolation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.engine import Engine

Labels = dict[str, str]


def _event(node: str, labels: Labels, at: float, **extra: Any) -> dict[str, Any]:
    return {"node": node, "alertgroup": "A", "labels": labels, "timestamp": at, **extra}


def _muted(eng: Engine, node: str) -> bool:
    alert = eng.table.get(f"{node}:A::")
    assert alert is not None, node
    return alert.suppressed_by is not None


# -- TestInhibitRuleHasEqual: sources (open or resolved), `equal`, one target ----

HAS_EQUAL = [
    pytest.param([], [], {"a": "b"}, False, id="no-source-alerts"),
    pytest.param([({}, True)], [], {"a": "b"}, True, id="no-equal-labels-any-source"),
    pytest.param(
        [({"a": "b", "b": "f"}, False), ({"a": "b", "b": "c"}, False)],
        ["a", "b"],
        {"a": "b", "b": "c"},
        False,
        id="matching-but-resolved",
    ),
    pytest.param(
        [({"a": "b", "c": "d"}, False), ({"a": "b", "c": "f"}, True)],
        ["a"],
        {"a": "b"},
        True,
        id="matching-and-unresolved",
    ),
    pytest.param(
        [({"a": "c", "c": "d"}, False), ({"a": "c", "c": "f"}, False)],
        ["a"],
        {"a": "b"},
        False,
        id="equal-label-differs",
    ),
]


@pytest.mark.parametrize(("sources", "equal", "target", "muted"), HAS_EQUAL)
def test_has_equal(
    engine: Callable[[str], Engine],
    sources: list[tuple[Labels, bool]],
    equal: list[str],
    target: Labels,
    muted: bool,
) -> None:
    """Only an open source whose `equal` labels match the target's mutes it."""
    eng = engine(
        "inhibit_rules:\n"
        f"  - {{source_matchers: ['src=\"1\"'], target_matchers: ['tgt=\"1\"'], equal: {equal}}}\n"
    )
    for i, (labels, active) in enumerate(sources):
        eng.process(_event(f"s{i}", {**labels, "src": "1"}, i), i)
        if not active:
            eng.process(_event(f"s{i}", {}, 10 + i, type="resolution"), 10 + i)
    eng.process(_event("target", {**target, "tgt": "1"}, 20), 20)
    assert _muted(eng, "target") is muted


# -- TestInhibitRuleMatches / TestInhibitRuleMatchers: two rules, two sources ----

SOURCES = [{"s1": "1", "t1": "2", "e": "1"}, {"s2": "1", "t2": "1", "e": "1"}]

LEGACY_RULES = """
inhibit_rules:
  - {source_match: {s1: "1"}, target_match: {t1: "1"}, equal: [e]}
  - {source_match: {s2: "1"}, target_match: {t2: "1"}, equal: [e]}
"""

MATCHER_RULES = """
inhibit_rules:
  - {source_matchers: ['s1="1"'], target_matchers: ['t1!="1"'], equal: [e]}
  - {source_matchers: ['s2="1"'], target_matchers: ['t2="1"'], equal: [e]}
"""

TARGETS: list[tuple[Labels, bool, bool]] = [
    # target labels, muted under the legacy rules, muted under the matcher rules
    ({"t1": "1", "e": "1"}, True, False),
    ({"t2": "1", "e": "1"}, True, True),
    ({"t1": "1", "t3": "1", "e": "1"}, True, False),
    ({"t1": "1", "t2": "1", "e": "1"}, True, True),
    ({"t1": "0", "e": "1"}, False, True),
    ({"s1": "1", "t1": "1", "e": "1"}, True, False),  # source 1 matches only the source side
    ({"s2": "1", "t2": "1", "e": "1"}, False, True),  # two-sided: not by two-sided source 2
    ({"t1": "1", "e": "0"}, False, False),  # equal label differs
]


@pytest.mark.parametrize(("rules", "column"), [(LEGACY_RULES, 1), (MATCHER_RULES, 2)])
@pytest.mark.parametrize("case", range(len(TARGETS)))
def test_rule_matches(engine: Callable[[str], Engine], rules: str, column: int, case: int) -> None:
    """Target matching, equal labels and the two-sided exclusion across two rules."""
    eng = engine(rules)
    for i, labels in enumerate(SOURCES):
        eng.process(_event(f"source{i}", labels, i), i)
    labels = TARGETS[case][0]
    eng.process(_event("target", labels, 5), 5)
    assert _muted(eng, "target") is TARGETS[case][column]


# -- TestInhibit: a timeline per case ---------------------------------------------

TIMELINE_RULES = """
inhibit_rules:
  - {source_match: {s: "1"}, target_match: {t: "1"}, equal: [e]}
"""


def test_target_alone_is_not_muted(engine: Callable[[str], Engine]) -> None:
    """alertOne is not muted while alertTwo has not fired."""
    eng = engine(TIMELINE_RULES)
    eng.process(_event("one", {"t": "1", "e": "f"}, 0), 0)
    assert not _muted(eng, "one")


def test_active_source_mutes_target(engine: Callable[[str], Engine]) -> None:
    """alertOne is muted by the active alertTwo, which is not muted itself."""
    eng = engine(TIMELINE_RULES)
    eng.process(_event("one", {"t": "1", "e": "f"}, 0), 0)
    eng.process(_event("two", {"s": "1", "e": "f"}, 1), 1)
    assert _muted(eng, "one")
    assert not _muted(eng, "two")


def test_resolved_source_mutes_nothing(engine: Callable[[str], Engine]) -> None:
    """Once alertTwo is resolved, neither alert is muted."""
    eng = engine(TIMELINE_RULES)
    eng.process(_event("one", {"t": "1", "e": "f"}, 0), 0)
    eng.process(_event("two", {"s": "1", "e": "f"}, 1), 1)
    eng.process(_event("two", {}, 2, type="resolution"), 2)
    assert not _muted(eng, "one")
    assert not _muted(eng, "two")


# -- acceptance TestInhibiting: JobDown mutes InstanceDown of its job and zone ----


def test_job_down_mutes_instance_down_of_its_zone(engine: Callable[[str], Engine]) -> None:
    """A JobDown mutes the InstanceDown of the same job and zone only, by alertname;
    the InstanceDown fires again once the JobDown is resolved."""
    eng = engine(
        """
        inhibit_rules:
          - source_match: {alertname: JobDown}
            target_match: {alertname: InstanceDown}
            equal: [job, zone]
        """
    )

    def push(node: str, name: str, zone: str, at: float, **extra: Any) -> None:
        labels = {"alertname": name, "job": "testjob", "zone": zone}
        eng.process({**_event(node, labels, at, **extra), "alertgroup": name}, at)

    push("a", "test1", "aa", 1)
    push("b", "InstanceDown", "aa", 1)
    push("c", "InstanceDown", "ab", 1)
    push("d", "JobDown", "aa", 2.2)
    muted = {a.node: a.suppressed_by is not None for a in eng.table.rows.values()}
    assert muted == {"a": False, "b": True, "c": False, "d": False}
    push("d", "JobDown", "aa", 3.6, type="resolution")
    assert not any(a.suppressed_by for a in eng.table.rows.values())
