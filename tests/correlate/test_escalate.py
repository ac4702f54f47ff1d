"""`kind: escalate`: an open, unacknowledged alert gets louder after `after`, once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.errors import RuleSetError
from correlator.model import Alert, Change
from correlator.ruleset.loader import RuleSet
from correlator.testing import feed

RULES = """
correlate:
  - name: unacked
    kind: escalate
    match: ['severity>=4']
    after: 15m
    set: {severity: critical, labels.priority: "P1-{{ labels.team }}"}
    receiver: pager
"""
MAINTENANCE = """
  - name: planned
    kind: maintenance
    match: ['node="db-1"']
    schedule: {start: 1970-01-01T00:10:00Z, end: 1970-01-01T00:40:00Z}
"""
DB = "db-1:DiskFull::"


def disk(
    at: float, severity: str = "major", kind: str = "problem", **labels: str
) -> dict[str, Any]:
    return {
        "node": "db-1",
        "alertgroup": "DiskFull",
        "severity": severity,
        "type": kind,
        "labels": {"team": "dba", **labels},
        "timestamp": at,
    }


def pages(changes: list[Change]) -> list[tuple[str | None, list[str]]]:
    return [
        (c.receiver, [a.identifier for a in c.alerts or ()])
        for c in changes
        if c.kind == "notification"
    ]


@pytest.fixture
def eng(engine: Callable[[str], Engine]) -> Engine:
    return engine(RULES)


def test_unacknowledged_for_after_escalates_and_pages_once(eng: Engine) -> None:
    """At exactly `after`: set applied, one notification, a journal note, a modify."""
    feed(eng, disk(0))
    assert eng.tick(899) == []
    out = eng.tick(900)
    row = eng.table.rows[DB]
    assert row.severity == 5 and row.labels["priority"] == "P1-dba"
    assert pages(out) == [("pager", [DB])]
    assert [c.kind for c in out] == ["alert.updated", "notification"]
    assert row.journal[-1].text.startswith("escalated by unacked: open and unacknowledged for 15m")
    assert pages(eng.tick(5000)) == []
    assert eng.stats.rule_events[("unacked", "escalated")] == 1


def test_acknowledge_stops_the_clock(eng: Engine) -> None:
    """An operator took it: no escalation."""
    feed(eng, disk(0))
    eng.acknowledge(DB, "alice", 600)
    assert pages(eng.tick(2000)) == []
    assert eng.table.rows[DB].severity == 4


def test_a_clear_stops_it_and_a_reopen_restarts_the_clock(eng: Engine) -> None:
    """Cleared at 10m: nothing at 15m; reopened at 20m: escalates at 35m, not 30m."""
    feed(eng, disk(0))
    feed(eng, disk(600, kind="resolution"))
    assert pages(eng.tick(900)) == []
    feed(eng, disk(1200))
    assert pages(eng.tick(2099)) == []
    assert pages(eng.tick(2100)) == [("pager", [DB])]


def test_an_alert_delivered_late_is_timed_from_its_first_occurrence(eng: Engine) -> None:
    """Stamped 1000, delivered at 1240: it has been open since 1000, so it escalates at 1900."""
    feed(eng, disk(1000), now=1240)
    assert pages(eng.tick(1899)) == []
    assert pages(eng.tick(1900)) == [("pager", [DB])]


def test_a_reopen_delivered_late_is_timed_from_the_reopening_occurrence(eng: Engine) -> None:
    """Cleared at 600; the reopening problem stamped 1200 arrives at 1400: escalates at 2100."""
    feed(eng, disk(0))
    feed(eng, disk(600, kind="resolution"))
    feed(eng, disk(1200), now=1400)
    assert pages(eng.tick(2099)) == []
    assert pages(eng.tick(2100)) == [("pager", [DB])]


def test_a_resolution_delivered_after_the_page_clears_without_a_second_page(eng: Engine) -> None:
    """Resolved at 850 (before the 900 deadline) but delivered at 1000: the page went out at 900.

    The escalation stands in the journal; the late resolution clears the row (the
    table orders it by its timestamp) and nothing more is sent.
    """
    feed(eng, disk(0))
    assert pages(eng.tick(900)) == [("pager", [DB])]
    out = feed(eng, disk(850, kind="resolution"), now=1000)
    row = eng.table.rows[DB]
    assert row.status == "cleared" and [c.kind for c in out] == ["alert.cleared"]
    assert pages(eng.tick(5000)) == []
    assert eng.stats.rule_events[("unacked", "escalated")] == 1


def test_a_reopen_after_escalation_starts_a_new_episode(eng: Engine) -> None:
    """Labels the escalation set are put back; the next episode can escalate again."""
    feed(eng, disk(0, priority="P3"))
    eng.tick(900)
    feed(eng, disk(1000, kind="resolution"))
    feed(eng, disk(1100, priority="P3"))
    row = eng.table.rows[DB]
    assert row.labels["priority"] == "P3" and row.severity == 4
    assert pages(eng.tick(2000)) == [("pager", [DB])]


def test_escalated_values_survive_deduplication(eng: Engine) -> None:
    """A new occurrence with the old severity and label changes nothing: the values are pinned.

    The table folds it as if it carried the escalated values, so it is a bare
    repeat (one change, no new journal note, state_change untouched).
    """
    feed(eng, disk(0))
    eng.tick(900)
    row = eng.table.rows[DB]
    notes = len(row.journal)
    out = feed(eng, disk(1000, priority="P3"))
    assert row.severity == 5 and row.labels["priority"] == "P1-dba"
    assert [c.kind for c in out] == ["alert.updated"] and pages(out) == []
    assert len(row.journal) == notes and row.state_change == 900
    assert row.to_dict().keys() == Alert("x", "n", "g").to_dict().keys()  # pins stay internal


def test_a_pinned_severity_is_a_floor(engine: Callable[[str], Engine]) -> None:
    """Escalated to minor: a major occurrence still raises it, a warning one only falls back to minor."""
    eng = engine(
        """
correlate:
  - name: nudge
    kind: escalate
    match: ['alertgroup="DiskFull"']
    after: 15m
    set: {severity: minor}
"""
    )
    feed(eng, disk(0, severity="warning"))
    eng.tick(900)
    row = eng.table.rows[DB]
    assert row.severity == 3
    feed(eng, disk(1000, severity="major"))
    assert row.severity == 4
    feed(eng, disk(1100, severity="warning"))
    assert row.severity == 3


@pytest.mark.parametrize("escalate_first", [False, True])
def test_a_repeat_of_an_escalated_source_never_flaps_an_inhibit(
    engine: Callable[[str], Engine], escalate_first: bool
) -> None:
    """Review finding 3 (t3b_escalate_inhibit), in both rule orders.

    A DB alert escalated to critical inhibits the App alert; a repeat of the DB
    problem with its original severity (major) must not release and re-suppress
    the App alert: no operator, whatever its place in dispatch, sees the lowered
    value, and the repeat is a single `alert.updated`.
    """
    inhibit = """
  - name: crit-db-mutes-app
    kind: inhibit
    source_matchers: ['alertgroup="DB"', 'severity>=5']
    target_matchers: ['alertgroup="App"']
    equal: [labels.site]
"""
    escalate = """
  - name: unacked
    kind: escalate
    match: ['alertgroup="DB"']
    after: 5m
    set: {severity: critical}
"""
    body = escalate + inhibit if escalate_first else inhibit + escalate
    eng = engine("correlate:" + body)

    def event(node: str, group: str, at: float) -> dict[str, Any]:
        return {
            "node": node,
            "alertgroup": group,
            "severity": "major",
            "labels": {"site": "s"},
            "timestamp": at,
        }

    feed(eng, event("db", "DB", 0))
    feed(eng, event("app", "App", 10))
    out = eng.tick(300)
    assert [c.kind for c in out] == ["alert.updated", "alert.suppressed"]
    app = eng.table.rows["app:App::"]
    notes = len(app.journal)
    out = feed(eng, event("db", "DB", 400))
    assert [(c.kind, c.alert and c.alert.identifier) for c in out] == [("alert.updated", "db:DB::")]
    assert eng.table.rows["db:DB::"].severity == 5
    assert app.suppressed_by == "crit-db-mutes-app" and len(app.journal) == notes


def test_an_alert_that_starts_matching_later_is_timed_from_then(eng: Engine) -> None:
    """Minor at 0, major from 5m: the clock starts at 5m."""
    feed(eng, disk(0, severity="minor"))
    feed(eng, disk(300))
    assert pages(eng.tick(1199)) == []
    assert pages(eng.tick(1200)) == [("pager", [DB])]


def test_an_alert_that_stops_matching_stops_the_clock(eng: Engine) -> None:
    """Downgraded to minor before the deadline: no escalation."""
    feed(eng, disk(0))
    feed(eng, disk(300, severity="minor"))
    assert pages(eng.tick(2000)) == []


def test_a_rule_escalating_only_unsuppressed_alerts_restarts_after_a_hold(
    engine: Callable[[str], Engine],
) -> None:
    """With `suppressed_by=""` in match, an inhibition stops the clock; the release restarts it."""
    eng = engine(
        RULES.replace("match: ['severity>=4']", "match: ['severity>=4', 'suppressed_by=\"\"']")
        + """inhibit_rules:
  - source_matchers: ['alertgroup="SiteDown"']
    target_matchers: ['alertgroup="DiskFull"']
"""
    )
    feed(eng, disk(0))
    site = {"node": "r1", "alertgroup": "SiteDown", "severity": "critical", "timestamp": 60}
    feed(eng, site)
    feed(eng, {**site, "type": "resolution", "timestamp": 500})
    assert pages(eng.tick(1399)) == []  # timed afresh from the release at 500
    assert pages(eng.tick(1400)) == [("pager", [DB])]


def test_time_in_maintenance_does_not_count(engine: Callable[[str], Engine]) -> None:
    """Open at 0, held 10m-40m: 10m counted before, 5m after → escalates at 45m."""
    eng = engine(RULES + MAINTENANCE)
    feed(eng, disk(0))
    assert pages(eng.tick(2699)) == []
    out = eng.tick(2700)
    assert pages(out) == [("pager", [DB])]


def test_an_alert_born_in_maintenance_starts_counting_at_its_end(
    engine: Callable[[str], Engine],
) -> None:
    """Created inside the window: the clock starts when the window releases it."""
    eng = engine("correlate:" + MAINTENANCE + RULES.split("correlate:")[1])  # other order
    feed(eng, disk(900))
    assert pages(eng.tick(2400 + 899)) == []
    assert pages(eng.tick(2400 + 900)) == [("pager", [DB])]


def test_the_cap_bounds_clocks(engine: Callable[[str], Engine]) -> None:
    """max_alerts refuses more clocks and counts it."""
    eng = engine(RULES + "    max_alerts: 1\n")
    feed(eng, disk(0))
    other = {**disk(1), "node": "db-2"}
    feed(eng, other)
    assert pages(eng.tick(2000)) == [("pager", [DB])]
    assert eng.stats.rule_events[("unacked", "cap_hit")] == 1


def test_cap_hit_counts_a_refused_row_once_per_episode(engine: Callable[[str], Engine]) -> None:
    """At the cap, a refused row's updates are refused silently; a reopen counts again."""
    eng = engine(RULES + "    max_alerts: 1\n")
    feed(eng, disk(0))
    for at in range(1, 5):
        feed(eng, {**disk(at), "node": "db-2", "summary": f"disk full ({at})"})
    assert eng.stats.rule_events[("unacked", "cap_hit")] == 1
    feed(eng, {**disk(10, kind="resolution"), "node": "db-2"})
    feed(eng, {**disk(11), "node": "db-2"})
    assert eng.stats.rule_events[("unacked", "cap_hit")] == 2


def test_a_row_refused_at_the_cap_is_timed_from_when_it_is_taken_on(
    engine: Callable[[str], Engine],
) -> None:
    """Refused at creation, taken on by a later update once there is room: timed from then."""
    eng = engine(RULES + "    max_alerts: 1\n")
    feed(eng, disk(0))
    other = {**disk(1), "node": "db-2"}
    feed(eng, other)  # refused: db-1 holds the only clock
    eng.acknowledge(DB, "alice", 60)  # db-1's clock stops: room for one
    feed(eng, {**other, "timestamp": 120, "summary": "still full"})  # `updated`: timed from 120
    assert pages(eng.tick(120 + 899)) == []
    assert pages(eng.tick(120 + 900)) == [("pager", ["db-2:DiskFull::"])]
    assert eng.stats.rule_events[("unacked", "cap_hit")] == 1


def test_without_receiver_nothing_is_sent(engine: Callable[[str], Engine]) -> None:
    """`receiver` is optional: the set values and the journal note still apply."""
    eng = engine(RULES.replace("    receiver: pager\n", ""))
    feed(eng, disk(0))
    out = eng.tick(900)
    assert pages(out) == [] and eng.table.rows[DB].severity == 5
    assert "notified" not in eng.table.rows[DB].journal[-1].text


def test_a_bad_severity_value_is_counted_and_skipped(engine: Callable[[str], Engine]) -> None:
    """A template that renders no valid severity leaves severity alone; the rest applies."""
    eng = engine(RULES.replace("severity: critical", "severity: '{{ labels.nope }}banana'"))
    feed(eng, disk(0))
    eng.tick(900)
    row = eng.table.rows[DB]
    assert row.severity == 4 and row.labels["priority"] == "P1-dba"
    assert eng.stats.rule_events[("unacked", "bad_value")] == 1


def test_an_empty_severity_sets_nothing(engine: Callable[[str], Engine]) -> None:
    """A severity that renders empty is not set: severity is left alone, nothing is counted."""
    eng = engine(RULES.replace("severity: critical", "severity: '{{ labels.nope }} '"))
    feed(eng, disk(0))
    eng.tick(900)
    row = eng.table.rows[DB]
    assert row.severity == 4 and row.labels["priority"] == "P1-dba"
    assert ("unacked", "bad_value") not in eng.stats.rule_events
    assert "severity" not in row.journal[-1].text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("after: 0s", "after must be longer than 0s"),
        ("after: 1m\n    set: {owner: bob}", "cannot set 'owner'"),
        ("after: 1m\n    set: {labels.: x}", "cannot set 'labels.'"),
    ],
)
def test_bad_rules_are_rule_errors(
    ruleset: Callable[[str], RuleSet], body: str, message: str
) -> None:
    """Mistakes are reported at load time."""
    text = f"correlate:\n  - name: e\n    kind: escalate\n    {body}\n"
    with pytest.raises(RuleSetError, match=message):
        ruleset(text)


def test_maintenance_behind_another_suppressor_still_pauses(
    engine: Callable[[str], Engine],
) -> None:
    """Already suppressed by another rule when the window starts: the clock still pauses."""
    eng = engine(RULES + MAINTENANCE)
    feed(eng, disk(0))
    eng.suppress(eng.table.rows[DB], 60, "inhibit-x", "test")
    assert pages(eng.tick(2699)) == []
    assert pages(eng.tick(2700)) == [("pager", [DB])]


def test_an_escalation_raises_the_incident_severity(engine: Callable[[str], Engine]) -> None:
    """Rules compose: the escalated severity shows in the incident the alert belongs to."""
    eng = engine(
        RULES
        + """
  - name: db-incident
    kind: incident
    group_by: [labels.team]
    window: 5m
"""
    )
    feed(eng, disk(0))
    out = eng.tick(900)
    updated = [c.incident for c in out if c.kind == "incident.updated"]
    assert updated and updated[-1] is not None and updated[-1]["severity"] == 5


def test_a_reopen_removes_labels_the_escalation_added(eng: Engine) -> None:
    """The label did not exist before the escalation: the reopen removes it again."""
    feed(eng, disk(0))
    eng.tick(900)
    feed(eng, disk(1000, kind="resolution"))
    feed(eng, disk(1050))
    row = eng.table.rows[DB]
    assert "priority" not in row.labels
    assert "escalation reset" in row.journal[-1].text


def test_a_rule_loaded_while_an_alert_is_open_times_it_from_the_load(
    engine: Callable[[str], Engine], ruleset: Callable[[str], RuleSet]
) -> None:
    """No burst of pages on reload: the clock of an already open alert starts at load."""
    eng = engine("{}")
    feed(eng, disk(0))
    eng.load(ruleset(RULES))
    eng.tick(1000)  # the rule starts here
    assert pages(eng.tick(1899)) == []
    assert pages(eng.tick(1900)) == [("pager", [DB])]


def test_summary_can_be_set(engine: Callable[[str], Engine]) -> None:
    """`summary` is a template like the others."""
    eng = engine(RULES.replace("set: {", "set: {summary: 'ESCALATED: {{ summary }}', "))
    feed(eng, disk(0))
    eng.tick(900)
    assert eng.table.rows[DB].summary == "ESCALATED: DiskFull on db-1"


def test_a_notification_carries_the_row_as_it_was_sent(ruleset: Callable[[str], RuleSet]) -> None:
    """Two escalations at once: the first receiver gets the row as its rule left it (P2),
    not as the second rule changed it later in the same tick (P1, critical)."""
    rules = """
correlate:
  - {name: chat, kind: escalate, match: ['severity>=major'], after: 10m,
     set: {labels.priority: P2}, receiver: chat}
  - {name: page, kind: escalate, match: ['severity>=major'], after: 10m,
     set: {labels.priority: P1, severity: critical}, receiver: pager}
"""
    eng = Engine(ruleset(rules), snapshots=True)
    feed(eng, disk(0))
    sent = {c.receiver: c.to_dict()["alerts"][0] for c in eng.tick(600) if c.kind == "notification"}
    assert (sent["chat"]["labels"]["priority"], sent["chat"]["severity"]) == ("P2", 4)
    assert (sent["pager"]["labels"]["priority"], sent["pager"]["severity"]) == ("P1", 5)


def test_rules_listed_before_see_a_reopened_row_already_reset(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """A rule matching the escalated label, listed before the escalate rule, does not see the
    previous episode's P1 on the reopened row: the reset runs first."""
    rules = """
correlate:
  - {name: p1-incident, kind: incident, match: ['labels.priority="P1"'], group_by: [node],
     window: 5m}
  - {name: unacked, kind: escalate, match: ['severity>=4'], after: 10m,
     set: {labels.priority: P1}}
"""
    eng = Engine(ruleset(rules))
    feed(eng, disk(100))
    eng.tick(700)  # escalated: P1, and the P1 incident opens
    feed(eng, disk(710, kind="resolution"))  # the incident closes
    out = feed(eng, disk(750))  # reopened: a new episode without P1
    assert [c.kind for c in out if c.kind.startswith("incident.")] == []
    assert "priority" not in eng.table.rows[DB].labels
