"""Event time, not arrival order, decides problem/resolution clearing within max_lateness.

A problem stamped before the resolution that cleared its row does not reopen
it; a resolution delivered before its problem is remembered and clears it when
it comes. Every arrival order of a small set of events ends in the table that
event-time order gives.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import permutations
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.errors import LateEvent
from correlator.ruleset.loader import RuleSet

ID = "h1:Down::"


def ev(at: float, kind: str = "problem", **kw: Any) -> dict[str, Any]:
    base = {"node": "h1", "alertgroup": "Down", "severity": "major", "type": kind, "timestamp": at}
    return {**base, **kw}


def res(at: float) -> dict[str, Any]:
    return ev(at, "resolution")


def kinds(changes: list[Any]) -> list[str]:
    return [c.kind for c in changes]


def final(eng: Engine) -> dict[str, tuple[str, int, int, float]]:
    """What the order must not change: status, severity, tally and last occurrence per row."""
    return {
        i: (a.status, a.severity, a.tally, a.last_occurrence)
        for i, a in sorted(eng.table.rows.items())
    }


def deliver(eng: Engine, events: list[dict[str, Any]]) -> None:
    """Events in the order given, arriving a second apart after the newest timestamp."""
    arrive = max(e["timestamp"] for e in events)
    for i, event in enumerate(events):
        eng.run_timers_before(arrive + i)
        eng.process(event, arrive + i)


def test_a_problem_older_than_the_clearing_resolution_does_not_reopen(
    engine: Callable[..., Engine],
) -> None:
    """Problem at 5 delivered after the resolution at 10 that cleared the row: it only counts."""
    eng = engine()
    eng.process(ev(0), 0)
    eng.process(res(10), 10)
    assert kinds(eng.process(ev(5), 11)) == ["alert.updated"]
    row = eng.table.get(ID)
    assert row is not None
    assert (row.status, row.severity, row.tally, row.last_occurrence) == ("cleared", 0, 2, 5)
    assert "not reopened" in row.journal[-1].text
    assert eng.stats.occurrences_before_resolution == 1


def test_a_resolution_delivered_before_its_problem_clears_it(
    engine: Callable[..., Engine],
) -> None:
    """Resolution at 10 arrives first: the problem at 5 is created and cleared at once."""
    eng = engine()
    assert eng.process(res(10), 10) == []
    assert eng.stats.resolutions_unmatched == 1
    assert kinds(eng.process(ev(5), 11)) == ["alert.created", "alert.cleared"]
    row = eng.table.get(ID)
    assert row is not None
    assert (row.status, row.severity, row.tally, row.state_change) == ("cleared", 0, 1, 10)
    assert "resolution received" in row.journal[-1].text
    assert kinds(eng.tick(131)) == ["alert.deleted"]  # 120 s after it cleared at 11


def test_a_problem_after_the_remembered_resolution_opens(engine: Callable[..., Engine]) -> None:
    """A problem stamped after the remembered resolution is a new episode: it opens."""
    eng = engine()
    eng.process(res(10), 10)
    assert kinds(eng.process(ev(15), 15)) == ["alert.created"]
    eng.process(ev(7), 16)  # older than the open row: a late occurrence, as always
    row = eng.table.get(ID)
    assert row is not None and (row.status, row.tally, row.last_occurrence) == ("open", 2, 15)


@pytest.mark.parametrize("order", [[ev(10), res(10)], [res(10), ev(10)]])
def test_a_resolution_wins_a_tie_in_either_order(
    engine: Callable[..., Engine], order: list[dict[str, Any]]
) -> None:
    """A problem and its resolution stamped alike end cleared, whichever arrives first."""
    eng = engine()
    for event in order:
        eng.process(event, 10)
    row = eng.table.get(ID)
    assert row is not None and row.status == "cleared"


def test_a_remembered_resolution_is_forgotten_after_max_lateness(
    engine: Callable[..., Engine],
) -> None:
    """The memory lasts max_lateness (5 m) from arrival: then older problems are late anyway."""
    eng = engine()
    eng.process(res(10), 10)
    assert eng.table.remembered() == 1
    eng.tick(309)
    assert eng.table.remembered() == 1
    eng.tick(310)
    assert eng.table.remembered() == 0
    eng.process(ev(311, node="h2"), 311)
    with pytest.raises(LateEvent):
        eng.process(ev(5), 311)


def test_remembered_resolutions_are_bounded(engine: Callable[..., Engine]) -> None:
    """Past the cap a resolution is not remembered (counted): its late problem opens."""
    eng = engine()
    eng.table.max_remembered = 1
    eng.process(res(10), 10)
    eng.process({**res(10), "node": "h2"}, 10)
    assert eng.table.remembered() == 1 and eng.stats.resolutions_cap_hit == 1
    eng.process({**ev(5), "node": "h2"}, 11)
    row = eng.table.get("h2:Down::")
    assert row is not None and row.status == "open"


def test_the_memory_outlives_the_deleted_row(engine: Callable[..., Engine]) -> None:
    """Cleared and deleted (120 s) within max_lateness: a problem older than the clear
    belongs to the deleted episode and brings no row back."""
    eng = engine()
    eng.process(ev(0), 0)
    eng.process(res(10), 10)
    assert kinds(eng.tick(130)) == ["alert.deleted"]
    assert eng.process(ev(5), 200) == []
    assert eng.table.get(ID) is None
    assert eng.stats.occurrences_before_resolution == 1


def test_info_rows_ignore_remembered_resolutions(engine: Callable[..., Engine]) -> None:
    """A resolution never clears info: one remembered does not clear an older info event."""
    eng = engine()
    eng.process(res(10), 10)
    eng.process(ev(5, "info"), 11)
    row = eng.table.get(ID)
    assert row is not None and row.status == "open"


P5, R10, P15, R20, P7, P3 = ev(5), res(10), ev(15), res(20), ev(7), ev(3)


@pytest.mark.parametrize(
    "events",
    [
        [P5, R10],
        [P5, R10, P15],
        [P3, P5, R10],
        [P5, P7, R10, P15],
        [P5, R10, P15, R20],
        [P5, P7, R10, P15, R20],
        [ev(5, "info"), R10, ev(15, "info")],
        [P5, {**ev(6), "node": "h2"}, R10, {**res(12), "node": "h2"}],
    ],
    ids=lambda events: ",".join(f"{e['type'][0]}{e['timestamp']:g}" for e in events),
)
def test_every_arrival_order_ends_in_the_event_time_table(
    engine: Callable[..., Engine], events: list[dict[str, Any]]
) -> None:
    """All orders of problems, resolutions, repeats and info give the sorted order's table."""
    eng = engine()
    deliver(eng, sorted(events, key=lambda e: e["timestamp"]))
    expected = final(eng)
    for order in permutations(events):
        eng = engine()
        deliver(eng, list(order))
        assert final(eng) == expected, [f"{e['type']}@{e['timestamp']}" for e in order]


GENERIC = """
correlate:
  - name: link-clear
    kind: clear
    problem: ['alertgroup="LinkDown"']
    resolution: ['alertgroup="LinkUp"']
    on: [node]
"""


def link(at: float, group: str = "LinkDown", key: str = "xe-0") -> dict[str, Any]:
    kind = "resolution" if group == "LinkUp" else "problem"
    return {"node": "r1", "alertgroup": group, "alertkey": key, "type": kind, "timestamp": at}


def test_generic_clear_of_a_problem_delivered_after_its_resolution(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """kind: clear remembers a resolution: a problem stamped before it is created cleared."""
    eng = Engine(ruleset(GENERIC))
    eng.process(link(10, "LinkUp"), 10)
    assert kinds(eng.process(link(5), 11)) == ["alert.created", "alert.cleared"]
    row = eng.table.get("r1:LinkDown:xe-0:")
    assert row is not None and row.status == "cleared"
    assert "link-clear" in row.journal[-1].who


def test_generic_clear_is_not_undone_by_an_older_problem(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """A problem stamped before the generic resolution that cleared its row does not reopen it."""
    eng = Engine(ruleset(GENERIC))
    eng.process(link(0), 0)
    eng.process(link(10, "LinkUp"), 10)
    eng.process(link(5), 11)
    row = eng.table.get("r1:LinkDown:xe-0:")
    assert row is not None and (row.status, row.tally) == ("cleared", 2)


@pytest.mark.parametrize(
    "events",
    [
        [link(5), link(10, "LinkUp")],
        [link(5), link(10, "LinkUp"), link(15)],
        [link(5), link(7, key="xe-1"), link(10, "LinkUp"), link(15, key="xe-1")],
        [link(5), link(10, "LinkUp"), link(15), link(20, "LinkUp")],
    ],
    ids=lambda events: ",".join(f"{e['alertgroup']}{e['timestamp']:g}" for e in events),
)
def test_generic_clear_ends_in_the_event_time_table_in_every_order(
    ruleset: Callable[[str], RuleSet], events: list[dict[str, Any]]
) -> None:
    """kind: clear across identifiers: every arrival order gives the sorted order's table."""
    rules = ruleset(GENERIC)
    eng = Engine(rules)
    deliver(eng, sorted(events, key=lambda e: e["timestamp"]))
    expected = final(eng)
    for order in permutations(events):
        eng = Engine(rules)
        deliver(eng, list(order))
        assert final(eng) == expected, [f"{e['alertgroup']}@{e['timestamp']}" for e in order]


INCIDENT = f"""{GENERIC}
  - name: links
    kind: incident
    match: ['alertgroup="LinkDown"']
    group_by: [node]
    window: 5m
    title: "links on {{{{ node }}}}"
"""


@pytest.mark.parametrize("late_first", [False, True])
def test_rules_see_the_created_and_cleared_row(
    ruleset: Callable[[str], RuleSet], late_first: bool
) -> None:
    """An incident over the problem opens and closes in both orders: rules see both transitions."""
    rules = ruleset(INCIDENT)
    eng = Engine(rules)
    events = [link(10, "LinkUp"), link(5)] if late_first else [link(5), link(10, "LinkUp")]
    changes = []
    for i, event in enumerate(events):
        changes += eng.process(event, 10 + i)
    assert [c.kind for c in changes if c.kind.startswith("incident")] == [
        "incident.opened",
        "incident.closed",
    ]
