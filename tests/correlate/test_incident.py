"""`kind: incident`: related alerts become one incident object with a root cause."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.correlate.base import ParentLink
from correlator.engine import Engine
from correlator.errors import RuleSetError
from correlator.model import Change
from correlator.ruleset.loader import RuleSet
from correlator.testing import feed

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
RULES = """
correlate:
  - name: cascade
    kind: incident
    match: ['labels.service!=""', 'severity>=3']
    group_by: [labels.service]
    window: 5m
    root_cause: {root}
    min_members: {min_members}
    max_members: {max_members}
    title: "{{{{ group.service }}}}: {{{{ count }}}} alerts, root {{{{ node }}}}"
"""
FIRST = "cascade:checkout:20260101T000000Z"


def rules(root: str = "[]", min_members: int = 1, max_members: int = 1000) -> str:
    return RULES.format(root=root, min_members=min_members, max_members=max_members)


def alert(
    at: float, node: str, tier: str = "db", severity: str = "major", service: str = "checkout"
) -> dict[str, Any]:
    return {
        "node": node,
        "alertgroup": f"{tier.capitalize()}Errors",
        "severity": severity,
        "labels": {"service": service, "tier": tier},
        "timestamp": T0 + at,
    }


def clear(at: float, node: str, tier: str = "db", service: str = "checkout") -> dict[str, Any]:
    return {**alert(at, node, tier, service=service), "type": "resolution"}


def incidents(changes: list[Change], kind: str | None = None) -> list[dict[str, Any]]:
    return [
        c.incident for c in changes if c.incident is not None and (kind is None or c.kind == kind)
    ]


def row(eng: Engine, node: str, tier: str = "db") -> Any:
    return eng.table.get(f"{node}:{tier.capitalize()}Errors::")


@pytest.fixture
def make(engine: Callable[[str], Engine]) -> Callable[..., Engine]:
    def build(**kwargs: Any) -> Engine:
        return engine(rules(**kwargs))

    return build


def test_a_slow_cascade_is_one_incident(make: Callable[..., Engine]) -> None:
    """db → api → web over 8 minutes, each within 5m of the previous: one incident."""
    eng = make()
    out = feed(eng, alert(0, "db-1", "db"))
    out += feed(eng, alert(240, "api-1", "api", "minor"))
    out += feed(eng, alert(480, "web-1", "web", "critical"))
    opened = incidents(out, "incident.opened")
    assert [i["id"] for i in opened] == [FIRST]
    last = incidents(out)[-1]
    assert last["members"] == ["db-1:DbErrors::", "api-1:ApiErrors::", "web-1:WebErrors::"]
    assert last["root_cause"] == "db-1:DbErrors::"
    assert last["severity"] == 5
    assert last["status"] == "open"
    assert last["group"] == {"service": "checkout"}
    assert last["title"] == "checkout: 3 alerts, root db-1"
    assert last["opened_at"] == T0 and last["updated_at"] == T0 + 480
    assert row(eng, "db-1").incident == FIRST and row(eng, "db-1").parent is None
    assert row(eng, "web-1", "web").parent == "db-1:DbErrors::"
    assert any("joined incident" in j.text for j in row(eng, "api-1", "api").journal)


def test_window_is_closed_and_measured_from_the_most_recent_member(
    make: Callable[..., Engine],
) -> None:
    """A member at exactly last+window joins; one a second later starts a new incident."""
    eng = make()
    feed(eng, alert(0, "db-1"))
    feed(eng, alert(300, "db-2"))
    out = feed(eng, alert(601, "db-3"))
    assert row(eng, "db-2").incident == FIRST
    second = incidents(out, "incident.opened")
    assert [i["id"] for i in second] == ["cascade:checkout:20260101T001001Z"]
    assert row(eng, "db-3").incident == second[0]["id"]


def test_other_groups_and_non_matching_alerts_stay_out(make: Callable[..., Engine]) -> None:
    """Groups are separate; an alert failing `match` never joins."""
    eng = make()
    feed(eng, alert(0, "db-1"))
    out = feed(eng, alert(10, "db-9", service="search"))
    out += feed(eng, alert(20, "db-3", severity="warning"))
    assert [i["group"] for i in incidents(out, "incident.opened")] == [{"service": "search"}]
    assert row(eng, "db-3").incident is None


def test_min_members_holds_the_incident_until_reached(make: Callable[..., Engine]) -> None:
    """Below min_members nothing is published; reaching it opens with every member."""
    eng = make(min_members=3)
    out = feed(eng, alert(0, "db-1")) + feed(eng, alert(60, "api-1", "api"))
    assert incidents(out) == [] and row(eng, "db-1").incident is None
    out = feed(eng, alert(120, "web-1", "web"))
    (opened,) = incidents(out, "incident.opened")
    assert len(opened["members"]) == 3 and opened["id"] == FIRST
    assert row(eng, "db-1").incident == FIRST


def test_a_pending_incident_is_dropped_when_its_window_runs_out(
    make: Callable[..., Engine],
) -> None:
    """min_members not reached within the window: the next alert starts afresh."""
    eng = make(min_members=2)
    feed(eng, alert(0, "db-1"))
    out = eng.tick(T0 + 300)
    out += feed(eng, alert(400, "api-1", "api"))
    assert incidents(out) == []
    out = feed(eng, alert(500, "web-1", "web"))
    (opened,) = incidents(out, "incident.opened")
    assert opened["members"] == ["api-1:ApiErrors::", "web-1:WebErrors::"]
    assert row(eng, "db-1").incident is None


def test_a_pending_incident_whose_members_all_cleared_is_dropped(
    make: Callable[..., Engine],
) -> None:
    """Nothing left open: a later alert does not complete the old pending incident."""
    eng = make(min_members=2)
    feed(eng, alert(0, "db-1"))
    feed(eng, clear(30, "db-1"))
    out = feed(eng, alert(60, "api-1", "api"))
    assert incidents(out) == []


def test_max_members_starts_the_next_incident(make: Callable[..., Engine]) -> None:
    """The member beyond the cap opens the group's next incident and is counted."""
    eng = make(max_members=2)
    feed(eng, alert(0, "db-1"))
    feed(eng, alert(10, "db-2"))
    out = feed(eng, alert(20, "db-3"))
    out += feed(eng, alert(30, "db-4"))
    (opened,) = incidents(out, "incident.opened")
    assert opened["id"] == "cascade:checkout:20260101T000020Z"
    assert row(eng, "db-4").incident == opened["id"]
    assert row(eng, "db-2").incident == FIRST
    assert eng.stats.rule_events[("cascade", "incident_cap")] == 1


def test_same_second_incidents_get_distinct_ids(make: Callable[..., Engine]) -> None:
    """Ids stay unique when one group starts two incidents in the same second."""
    eng = make(max_members=1)
    out = feed(eng, alert(0, "db-1")) + feed(eng, alert(0, "db-2"))
    assert [i["id"] for i in incidents(out, "incident.opened")] == [FIRST, FIRST + ".2"]


def test_severity_follows_the_open_members(make: Callable[..., Engine]) -> None:
    """Severity is the highest open member: it rises on a dedup and falls on a clear."""
    eng = make()
    feed(eng, alert(0, "db-1", severity="major"))
    feed(eng, alert(10, "api-1", "api", severity="minor"))
    out = feed(eng, alert(20, "api-1", "api", severity="critical"))
    assert incidents(out, "incident.updated")[-1]["severity"] == 5
    out = feed(eng, clear(30, "api-1", "api"))
    assert incidents(out, "incident.updated")[-1]["severity"] == 4
    out = feed(eng, alert(40, "db-1", severity="major"))
    assert incidents(out) == []  # nothing changed: nothing published


def test_closes_when_all_members_clear_and_a_reopen_starts_anew(
    make: Callable[..., Engine],
) -> None:
    """All members cleared → incident.closed; a member reopening later is a new incident."""
    eng = make()
    feed(eng, alert(0, "db-1"))
    feed(eng, alert(10, "api-1", "api"))
    out = feed(eng, clear(20, "db-1"))
    assert incidents(out, "incident.closed") == []
    out = feed(eng, clear(30, "api-1", "api"))
    (closed,) = incidents(out, "incident.closed")
    assert closed["status"] == "closed" and closed["severity"] == 0
    assert closed["closed_at"] == T0 + 30
    out = feed(eng, alert(40, "db-1"))
    (opened,) = incidents(out, "incident.opened")
    assert opened["id"] == "cascade:checkout:20260101T000040Z"
    assert opened["members"] == ["db-1:DbErrors::"]
    # one group, one member, two remembered starts; api-1's parent is the engine's record
    assert eng.operators["cascade"].size() == 4
    api = row(eng, "api-1", "api")
    assert eng.parent_link(api) == ("db-1:DbErrors::", "cascade", "incident")


def test_root_cause_matchers_pick_the_root(make: Callable[..., Engine]) -> None:
    """`root_cause:` wins over arrival order, and the other members follow it."""
    eng = make(root="['labels.tier=\"db\"']")
    feed(eng, alert(0, "web-1", "web"))
    out = feed(eng, alert(60, "db-1", "db"))
    assert incidents(out)[-1]["root_cause"] == "db-1:DbErrors::"
    assert row(eng, "web-1", "web").parent == "db-1:DbErrors::"
    assert row(eng, "db-1").parent is None


def test_an_earlier_alert_delivered_late_becomes_the_root(make: Callable[..., Engine]) -> None:
    """Out of order: the root cause is the earliest occurrence, not the first delivered."""
    eng = make()
    feed(eng, alert(100, "api-1", "api"))
    late = alert(40, "db-1")
    out = eng.process(late, T0 + 110)
    assert incidents(out)[-1]["root_cause"] == "db-1:DbErrors::"
    assert row(eng, "api-1", "api").parent == "db-1:DbErrors::"


def test_a_parent_set_by_another_rule_is_kept(make: Callable[..., Engine]) -> None:
    """This rule only writes `parent` where it is unset or was written by itself."""
    eng = make(min_members=2)
    feed(eng, alert(0, "web-1", "web"))
    feed(eng, {"node": "core-r1", "alertgroup": "LinkDown", "timestamp": T0 + 5})
    link = ParentLink("core-r1:LinkDown::", "uplink", "topology")
    assert eng.set_parent(row(eng, "web-1", "web"), link, T0 + 5, "uplink", "test")
    feed(eng, alert(10, "web-2", "web"))
    assert row(eng, "web-1", "web").parent == "core-r1:LinkDown::"
    assert row(eng, "web-2", "web").parent == "web-1:WebErrors::"


def test_the_incident_cap_refuses_new_incidents(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """max_incidents bounds the state; refusals are counted."""
    eng = Engine(ruleset(rules().replace("window: 5m", "window: 5m\n    max_incidents: 1")))
    feed(eng, alert(0, "db-1"))
    out = feed(eng, alert(10, "db-9", service="search"))
    assert incidents(out) == []
    assert eng.stats.rule_events[("cascade", "cap_hit")] == 1


def test_ids_remembered_beyond_the_cap_are_forgotten_early_and_counted(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """Start seconds are remembered for a late member; at `max_incidents` the oldest goes."""
    eng = Engine(ruleset(rules().replace("window: 5m", "window: 5m\n    max_incidents: 2")))
    ids = []
    for at, node in ((0, "db-1"), (2, "db-2"), (4, "db-3")):  # each closes before the next
        opened = incidents(feed(eng, alert(at, node)), "incident.opened")
        ids.append(opened[0]["id"])
        feed(eng, clear(at + 1, node))
    assert len(set(ids)) == 3
    assert eng.stats.rule_events[("cascade", "incident_id_cap")] == 1
    assert eng.stats.rule_events[("cascade", "cap_hit")] == 0


def test_cap_hit_counts_a_refused_row_once_per_episode(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """At the cap, a refused member's updates are refused silently; a reopen counts again."""
    eng = Engine(ruleset(rules().replace("window: 5m", "window: 5m\n    max_incidents: 1")))
    feed(eng, alert(0, "db-1"))
    feed(eng, alert(10, "db-9", service="search"))
    for at in range(11, 15):
        out = feed(eng, {**alert(at, "db-9", service="search"), "summary": f"errors ({at})"})
        assert incidents(out) == []
    assert eng.stats.rule_events[("cascade", "cap_hit")] == 1
    feed(eng, clear(20, "db-9", service="search"))
    feed(eng, alert(21, "db-9", service="search"))
    assert eng.stats.rule_events[("cascade", "cap_hit")] == 2


def test_state_is_evicted(make: Callable[..., Engine]) -> None:
    """Once closed and past its window and the grace for late members, the group is forgotten,
    and with it the start of its id: no member can be stamped in that second any more."""
    eng = make()
    feed(eng, alert(0, "db-1"))
    feed(eng, clear(10, "db-1"))
    eng.tick(T0 + 599)
    assert eng.operators["cascade"].size() == 2  # the group (a late member may come) + start
    eng.tick(T0 + 600)
    assert eng.operators["cascade"].size() == 0
    feed(eng, alert(700, "db-9", service="search"))
    assert eng.operators["cascade"].size() == 3  # only the new group, member and start


def test_group_outlives_its_window_by_the_engines_max_lateness(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """The grace for late members is the engine's `max_lateness`, not a fixed 5 minutes."""
    eng = Engine(ruleset(rules()), max_lateness=60)
    feed(eng, alert(0, "db-1"))
    feed(eng, clear(10, "db-1"))
    eng.tick(T0 + 359)
    assert eng.operators["cascade"].size() == 2  # window 5m + 60s not yet over
    eng.tick(T0 + 360)
    assert eng.operators["cascade"].size() == 0  # the group is gone, and its id's start
    feed(eng, alert(200, "db-9", service="search"), now=T0 + 360)
    assert eng.operators["cascade"].size() == 3  # new group, member and start


BAD = """
correlate:
  - name: bad
    kind: incident
    group_by: [node]
"""


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            "    window: 1m\n    min_members: 3\n    max_members: 2\n",
            "max_members must be at least",
        ),
        ("    window: 0s\n", "window must be longer than 0s"),
    ],
)
def test_bad_bounds_are_rule_errors(
    ruleset: Callable[[str], RuleSet], extra: str, message: str
) -> None:
    """Impossible bounds are reported when the rules load."""
    with pytest.raises(RuleSetError, match=message):
        ruleset(BAD + extra)


def test_a_window_that_ran_out_between_timer_ticks_is_honoured(
    make: Callable[..., Engine],
) -> None:
    """Live, the expiry timer may not have fired yet: the gap is still checked on arrival."""
    eng = make()
    eng.process(alert(0, "db-1"), T0)
    out = eng.process(alert(400, "db-2"), T0 + 400)  # no tick in between
    assert [i["id"] for i in incidents(out, "incident.opened")] == [
        "cascade:checkout:20260101T000640Z"
    ]


def test_deleted_members_are_forgotten(ruleset: Callable[[str], RuleSet]) -> None:
    """A cleared member whose row is deleted leaves the rule's index; the incident stays open."""
    eng = Engine(ruleset(rules()), delete_cleared_after=60)
    feed(eng, alert(0, "db-1"))
    feed(eng, alert(10, "api-1", "api"))
    feed(eng, clear(20, "db-1"))
    out = feed(eng, alert(200, "api-2", "api"))
    assert row(eng, "db-1") is None
    assert incidents(out)[-1]["members"] == [
        "db-1:DbErrors::",
        "api-1:ApiErrors::",
        "api-2:ApiErrors::",
    ]
    # one group, two live members, one remembered start (the engine records the parents)
    assert eng.operators["cascade"].size() == 4


def late(eng: Engine, event: dict[str, Any], now: float) -> list[Change]:
    """Deliver an event at `now` (offset from T0), after its own occurrence time."""
    return eng.tick(T0 + now) + eng.process(event, T0 + now)


def test_a_late_member_inside_the_window_joins_after_the_window_timer(
    make: Callable[..., Engine],
) -> None:
    """A member that occurred inside the window joins the incident even when delivered
    after the window ran out (within max_lateness): no second incident with the same id."""
    eng = make()
    feed(eng, alert(0, "db-1"))
    out = late(eng, alert(0.5, "api-1", "api"), 400)
    assert incidents(out, "incident.opened") == []
    (updated,) = incidents(out, "incident.updated")
    assert updated["id"] == FIRST
    assert updated["members"] == ["db-1:DbErrors::", "api-1:ApiErrors::"]
    assert row(eng, "api-1", "api").parent == "db-1:DbErrors::"


def test_a_late_member_completes_a_pending_incident(make: Callable[..., Engine]) -> None:
    """Below min_members the incident waits out the grace for late members, not only the window."""
    eng = make(min_members=2)
    feed(eng, alert(0, "db-1"))
    out = late(eng, alert(200, "api-1", "api"), 550)
    (opened,) = incidents(out, "incident.opened")
    assert opened["id"] == FIRST and len(opened["members"]) == 2


def test_a_late_member_after_the_close_gets_a_new_id(make: Callable[..., Engine]) -> None:
    """An incident started by a late member never reuses the id of one of the same second."""
    eng = make()
    feed(eng, alert(0, "db-1"))
    feed(eng, clear(0.2, "db-1"))  # closed: closing is final
    out = late(eng, alert(0.5, "api-1", "api"), 350)  # after the window timer
    (opened,) = incidents(out, "incident.opened")
    assert opened["id"] == FIRST + ".2"
    assert row(eng, "api-1", "api").incident == FIRST + ".2"


def test_ids_stay_unique_after_the_group_is_forgotten(ruleset: Callable[[str], RuleSet]) -> None:
    """The clock ran past the group's lifetime with no newer event; a member stamped just after
    the first (not late: no event is newer) starts an incident whose id still differs (the
    rule's memory of started ids follows event time, not the clock)."""
    eng = Engine(ruleset(rules()))
    feed(eng, alert(0, "db-1"))
    eng.tick(T0 + 700)  # window + max_lateness passed: the group is forgotten
    out = late(eng, alert(0.5, "api-1", "api"), 800)
    (opened,) = incidents(out, "incident.opened")
    assert opened["id"] == FIRST + ".2"
    assert row(eng, "db-1").incident == FIRST


def test_a_parent_that_would_close_a_loop_is_not_written(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """A threshold made the root cause a child of its storm alert; the incident does not make
    the storm alert a child of the root (counted as parent_cycle)."""
    eng = Engine(
        ruleset(
            """
            correlate:
              - name: storm
                kind: threshold
                match: ['alertgroup="DbErrors"']
                group_by: [labels.service]
                count: 2
                window: 60s
                alert: {severity: major, labels: {service: "{{ group.service }}"}}
              - name: cascade
                kind: incident
                match: ['labels.service!=""']
                group_by: [labels.service]
                window: 5m
                min_members: 4
                root_cause: ['node="db-2"']
            """
        )
    )
    feed(eng, alert(0, "db-1"))
    feed(eng, alert(10, "db-2"))  # storm raised; db-2's parent = the storm alert
    storm = "correlator:storm:checkout"
    assert row(eng, "db-2").parent == storm
    feed(eng, alert(20, "api-1", "api"))  # 4 members: opens with root db-2
    assert row(eng, "api-1", "api").parent == "db-2:DbErrors::"
    storm_row = eng.table.get(storm)
    assert storm_row is not None and storm_row.parent is None
    assert eng.stats.rule_events[("cascade", "parent_cycle")] == 1


def test_a_reopened_member_drops_the_parent_of_its_closed_incident(
    make: Callable[..., Engine],
) -> None:
    """A member reopening after its incident closed does not keep the old root as parent:
    as root of the next incident it has none; in a pending one the old parent is unset."""
    eng = make()
    feed(eng, alert(0, "db-1"))
    feed(eng, alert(10, "api-1", "api"))
    feed(eng, clear(20, "db-1"))
    feed(eng, clear(30, "api-1", "api"))
    assert row(eng, "api-1", "api").parent == "db-1:DbErrors::"  # kept as history
    out = feed(eng, alert(100, "api-1", "api"))
    (opened,) = incidents(out, "incident.opened")
    assert opened["root_cause"] == "api-1:ApiErrors::"
    assert row(eng, "api-1", "api").parent is None

    eng = make(min_members=2)
    feed(eng, alert(0, "db-1"))
    feed(eng, alert(10, "api-1", "api"))
    feed(eng, clear(20, "db-1"))
    feed(eng, clear(30, "api-1", "api"))
    out = feed(eng, alert(100, "api-1", "api"))  # pending: one member of two
    assert incidents(out) == []
    api = row(eng, "api-1", "api")
    assert api.parent is None
    assert "parent db-1:DbErrors:: unset: its incident closed" in api.journal[-1].text
