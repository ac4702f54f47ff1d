"""`kind: clear`: a resolution clears every open problem with equal `on` fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.ruleset.loader import RuleSet
from correlator.testing import feed

RULES = """
correlate:
  - name: link-clear
    kind: clear
    problem: ['alertgroup=~"LinkDown|IfDown"']
    resolution: ['alertgroup="LinkUp"']
    on: [node, alertkey]
"""
NAME = "link-clear"
DOWN = "r1:LinkDown:xe-0:"


def down(
    at: float, node: str = "r1", key: str = "xe-0", group: str = "LinkDown", **kw: Any
) -> dict[str, Any]:
    return {
        "node": node,
        "alertgroup": group,
        "alertkey": key,
        "severity": "major",
        "timestamp": at,
        **kw,
    }


def up(at: float, node: str = "r1", key: str = "xe-0", **kw: Any) -> dict[str, Any]:
    return {
        "node": node,
        "alertgroup": "LinkUp",
        "alertkey": key,
        "type": "resolution",
        "timestamp": at,
        **kw,
    }


def status(eng: Engine, identifier: str = DOWN) -> str | None:
    row = eng.table.get(identifier)
    return None if row is None else row.status


@pytest.fixture
def eng(engine: Callable[[str], Engine]) -> Engine:
    return engine(RULES)


def test_resolution_clears_every_problem_with_equal_on_values(eng: Engine) -> None:
    """One LinkUp clears the LinkDown and IfDown of its interface, and nothing else."""
    feed(eng, down(0))
    feed(eng, down(1, group="IfDown"))
    feed(eng, down(2, key="xe-1"))
    feed(eng, down(3, node="r2"))
    changes = feed(eng, up(10))
    cleared = sorted(c.alert.identifier for c in changes if c.kind == "alert.cleared" and c.alert)
    assert cleared == ["r1:IfDown:xe-0:", DOWN]
    assert status(eng, "r1:LinkDown:xe-1:") == "open"
    assert status(eng, "r2:LinkDown:xe-0:") == "open"
    row = eng.table.get(DOWN)
    assert row is not None and row.severity == 0
    note = row.journal[-1]
    assert note.who == NAME and "resolution r1:LinkUp:xe-0: on node=r1, alertkey=xe-0" in note.text
    assert eng.table.get("r1:LinkUp:xe-0:") is None  # a resolution with no open problem: no row
    assert eng.operators[NAME].size() == 3  # two open problems, the resolution remembered


def test_old_resolution_does_not_clear_a_newer_problem(eng: Engine) -> None:
    """A resolution stamped before the problem's last occurrence belongs to an earlier outage."""
    feed(eng, down(0))
    feed(eng, down(100))
    feed(eng, up(50), now=100)
    assert status(eng) == "open"
    feed(eng, up(100))
    assert status(eng) == "cleared"


def test_when_condition_applies_to_problem_and_resolution(engine: Callable[[str], Engine]) -> None:
    """A CEL `when` scopes both sides: problems and resolutions it rejects take no part."""
    eng = engine(RULES + "    when: 'labels.env == \"prod\"'\n")
    feed(eng, down(0, labels={"env": "prod"}))
    feed(eng, down(0, node="r2", labels={"env": "lab"}))
    feed(eng, up(10, node="r2", labels={"env": "prod"}))
    assert status(eng, "r2:LinkDown:xe-0:") == "open"  # the problem is out of scope
    feed(eng, up(10, labels={"env": "lab"}))
    assert status(eng) == "open"  # the resolution is out of scope
    feed(eng, up(20, labels={"env": "prod"}))
    assert status(eng) == "cleared"


def test_cleared_problem_leaves_the_index_and_reopens_into_it(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """A problem cleared by its own resolution is forgotten; reopened, it is cleared again."""
    eng = Engine(ruleset(RULES), delete_cleared_after=86_400)
    feed(eng, down(0))
    feed(eng, {**up(10), "alertgroup": "LinkDown"})  # cleared by identifier, not by the rule
    assert status(eng) == "cleared" and eng.operators[NAME].size() == 0
    feed(eng, down(20))
    assert status(eng) == "open" and eng.operators[NAME].size() == 1
    feed(eng, up(30))
    assert status(eng) == "cleared" and eng.operators[NAME].size() == 1  # up(30) remembered


def test_rule_added_by_a_reload_clears_problems_already_open(
    engine: Callable[[str], Engine], ruleset: Callable[[str], RuleSet]
) -> None:
    """`start()` indexes the open problems: a new rule clears a LinkDown opened before it."""
    eng = engine("{}")
    feed(eng, down(0))
    feed(eng, down(1, key="xe-1"))
    feed(eng, {**down(2, key="xe-2"), "type": "info"})  # not a problem: never cleared by the rule
    eng.load(ruleset(RULES))
    feed(eng, up(10))
    assert status(eng) == "cleared"
    assert status(eng, "r1:LinkDown:xe-1:") == "open"
    assert eng.operators[NAME].size() == 2  # xe-1 open, up(10) remembered
    feed(eng, up(11, key="xe-2"))
    assert status(eng, "r1:LinkDown:xe-2:") == "open"


def test_rule_changed_by_a_reload_rebuilds_its_index(
    engine: Callable[[str], Engine], ruleset: Callable[[str], RuleSet]
) -> None:
    """A changed rule starts with an index of the open problems it now selects."""
    eng = engine(RULES)
    feed(eng, down(0))
    feed(eng, down(0, group="PortDown"))
    eng.load(ruleset(RULES.replace("LinkDown|IfDown", "LinkDown|PortDown")))
    feed(eng, up(10))
    assert status(eng) == "cleared"
    assert status(eng, "r1:PortDown:xe-0:") == "cleared"


def test_unchanged_rule_keeps_its_index_over_a_reload(
    engine: Callable[[str], Engine], ruleset: Callable[[str], RuleSet]
) -> None:
    """Reloading the same rule keeps the operator and its state: it still clears what it knew."""
    eng = engine(RULES)
    feed(eng, down(0))
    before = eng.operators[NAME]
    eng.load(ruleset(RULES))
    assert eng.operators[NAME] is before
    feed(eng, up(10))
    assert status(eng) == "cleared"


def test_a_row_that_comes_to_match_problem_is_cleared(engine: Callable[[str], Engine]) -> None:
    """Created minor (not a problem of `severity>=major`), updated to critical: now it is."""
    eng = engine(
        RULES.replace(
            "problem: ['alertgroup=~\"LinkDown|IfDown\"']",
            "problem: ['alertgroup=\"LinkDown\"', 'severity>=major']",
        )
    )
    feed(eng, down(0, severity="minor"))
    feed(eng, down(10, severity="critical"))
    feed(eng, up(20))
    assert status(eng) == "cleared"


def test_a_row_whose_on_values_change_moves_in_the_index(engine: Callable[[str], Engine]) -> None:
    """on: [labels.peer]: after the row's peer changes from p1 to p2, p2's recovery clears it
    and p1's no longer does."""
    eng = engine(RULES.replace("on: [node, alertkey]", "on: [labels.peer]"))
    feed(eng, down(0, labels={"peer": "p1"}))
    feed(eng, down(10, labels={"peer": "p2"}))
    feed(eng, up(20, node="r9", labels={"peer": "p1"}))
    assert status(eng) == "open"
    feed(eng, up(30, node="r9", labels={"peer": "p2"}))
    assert status(eng) == "cleared"
    assert eng.operators[NAME].size() == 2  # no problem indexed; both resolutions remembered


def test_a_row_that_stops_matching_leaves_the_index(engine: Callable[[str], Engine]) -> None:
    """Downgraded below `severity>=major`, it is no problem of the rule's any more."""
    eng = engine(
        RULES.replace(
            "problem: ['alertgroup=~\"LinkDown|IfDown\"']",
            "problem: ['alertgroup=\"LinkDown\"', 'severity>=major']",
        )
    )
    feed(eng, down(0))
    feed(eng, down(10, severity="minor"))
    assert eng.operators[NAME].size() == 0
    feed(eng, up(20))
    assert status(eng) == "open"


def test_a_rule_made_change_can_make_a_problem(engine: Callable[[str], Engine]) -> None:
    """An escalation raises a minor to critical: a `severity>=critical` problem now, cleared
    by the next recovery. (A rule reading only fields no rule changes skips such changes.)"""
    only_critical = RULES.replace(
        "problem: ['alertgroup=~\"LinkDown|IfDown\"']",
        "problem: ['alertgroup=\"LinkDown\"', 'severity>=critical']",
    )
    eng = engine(
        only_critical
        + """  - name: louder
    kind: escalate
    match: ['alertgroup="LinkDown"']
    after: 1m
    set: {severity: critical}
"""
    )
    assert "modified" in eng.operators[NAME].transitions
    feed(eng, down(0, severity="minor"))
    eng.tick(60)
    assert eng.table.rows[DOWN].severity == 5
    feed(eng, up(70))
    assert status(eng) == "cleared"
    assert "modified" not in engine(RULES).operators[NAME].transitions
