"""`kind: absence`: no matching event for `for:` raises an alert, the next one clears it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.errors import RuleSetError
from correlator.model import Change
from correlator.ruleset.loader import RuleSet
from correlator.testing import feed

RULES = """
correlate:
  - name: db-heartbeat
    kind: absence
    match: ['alertgroup="Heartbeat"']
    group_by: [node]
    for: 2m
    alert:
      node: "{{ group.node }}"
      summary: "{{ group.node }} silent (last {{ last_seen }})"
"""
DB1 = "correlator:db-heartbeat:db1"
DB2 = "correlator:db-heartbeat:db2"


def beat(at: float, node: str = "db1", **extra: Any) -> dict[str, Any]:
    event = {"node": node, "alertgroup": "Heartbeat", "type": "info", "timestamp": at}
    return {**event, **extra}


def kinds(changes: list[Change], identifier: str) -> list[str]:
    return [c.kind for c in changes if c.alert is not None and c.alert.identifier == identifier]


def expecting(*nodes: str) -> str:
    entries = ", ".join(f"{{node: {n}}}" for n in nodes)
    return RULES.replace("    for: 2m\n", f"    for: 2m\n    expect: [{entries}]\n")


@pytest.fixture
def eng(engine: Callable[[str], Engine]) -> Engine:
    return engine(RULES)


def test_silence_for_for_raises_at_last_plus_for(eng: Engine) -> None:
    """The alert is raised exactly `for` after the last matching event, not earlier."""
    feed(eng, beat(0))
    feed(eng, beat(30))
    assert kinds(eng.tick(149), DB1) == []
    assert kinds(eng.tick(150), DB1) == ["alert.created"]
    row = eng.table.rows[DB1]
    assert (row.status, row.severity, row.node, row.first_occurrence) == ("open", 4, "db1", 150)
    assert row.summary == "db1 silent (last 30.0)"
    assert (
        "raised: no matching event for 2m from node=db1 (last one db1:Heartbeat:: at 1970-01-01T00:00:30Z)"
        in (row.journal[0].text)
    )


def test_regular_heartbeats_raise_nothing(eng: Engine) -> None:
    """A source that keeps reporting within `for` never alerts, and timers do not pile up."""
    for at in range(0, 3600, 30):
        feed(eng, beat(at))
    eng.tick(3599)
    assert DB1 not in eng.table.rows
    assert len(eng._timers) <= 2


def test_event_exactly_at_the_deadline_is_in_time(eng: Engine) -> None:
    """Events at t come before timers at t: a heartbeat exactly `for` later keeps it quiet."""
    feed(eng, beat(0))
    feed(eng, beat(120))
    eng.tick(120)
    assert DB1 not in eng.table.rows


def test_next_event_clears_and_silence_raises_again(ruleset: Callable[[str], RuleSet]) -> None:
    """The dead-man switch: a heartbeat clears the alert, the next silence re-opens the row."""
    eng = Engine(ruleset(RULES), delete_cleared_after=600)  # the cleared row is still there
    feed(eng, beat(0))
    eng.tick(120)
    changes = feed(eng, beat(200))
    assert kinds(changes, DB1) == ["alert.cleared"]
    row = eng.table.rows[DB1]
    assert "db1:Heartbeat:: received after 3m20s of silence" in row.journal[-1].text
    eng.tick(319)
    assert row.status == "cleared"
    assert kinds(eng.tick(320), DB1) == ["alert.updated"]  # reopened
    assert (row.status, row.tally) == ("open", 2)


def test_one_alert_per_silence(eng: Engine) -> None:
    """A raised alert stays one row: no repeat while the silence goes on."""
    feed(eng, beat(0))
    eng.tick(120)
    eng.tick(10_000)
    assert eng.table.rows[DB1].tally == 1


def test_groups_are_watched_separately(eng: Engine) -> None:
    """db2's heartbeats do not keep db1 alive."""
    feed(eng, beat(0, "db1"))
    for at in range(0, 300, 30):
        feed(eng, beat(at, "db2"))
    assert eng.table.rows[DB1].status == "open"
    assert DB2 not in eng.table.rows


def test_late_event_says_nothing_about_now(eng: Engine) -> None:
    """An event older than the newest one seen does not move the deadline."""
    feed(eng, beat(100))
    feed(eng, beat(50), now=100)
    assert eng.stats.rule_events[("db-heartbeat", "late")] == 1
    eng.tick(220)
    assert DB1 in eng.table.rows


def test_delayed_heartbeat_still_clears(eng: Engine) -> None:
    """A heartbeat newer than the last one clears the alert even if it is delivered late."""
    feed(eng, beat(0))
    eng.tick(120)
    feed(eng, beat(110), now=125)
    assert eng.table.rows[DB1].status == "cleared"
    eng.tick(229)
    assert eng.table.rows[DB1].status == "cleared"
    eng.tick(230)
    assert eng.table.rows[DB1].status == "open"


def test_any_event_type_is_a_sign_of_life(eng: Engine) -> None:
    """Problems, resolutions and info events matching the rule all count as heartbeats."""
    feed(eng, beat(0))
    feed(eng, beat(100, type="resolution"))
    feed(eng, beat(200, type="problem"))
    eng.tick(300)
    assert DB1 not in eng.table.rows


def test_default_severity_and_summary(engine: Callable[[str], Engine]) -> None:
    """Without templates the alert is major (not the heartbeat's severity) and names the group."""
    eng = engine(
        """
        correlate:
          - name: watchdog
            kind: absence
            match: ['alertname="Watchdog"']
            group_by: [labels.cluster]
            for: 5m
        """
    )
    feed(
        eng,
        {
            "node": "prom",
            "alertgroup": "Watchdog",
            "severity": 0,
            "labels": {"cluster": "k1"},
            "timestamp": 0,
        },
    )
    eng.tick(300)
    row = eng.table.rows["correlator:watchdog:k1"]
    assert (row.severity, row.summary, row.alertgroup) == (
        4,
        "no matching event for 5m from labels.cluster=k1",
        "watchdog",
    )


def test_no_group_by_watches_the_whole_rule(engine: Callable[[str], Engine]) -> None:
    """Without `group_by` any matching event keeps the single `correlator:<rule>` quiet."""
    eng = engine(RULES.replace("    group_by: [node]\n", "").replace("{{ group.node }}", "all"))
    feed(eng, beat(0, "a"))
    feed(eng, beat(100, "b"))
    eng.tick(219)
    assert "correlator:db-heartbeat" not in eng.table.rows
    eng.tick(220)
    assert eng.table.rows["correlator:db-heartbeat"].summary == "all silent (last 100.0)"


def test_expected_group_alerts_without_ever_reporting(engine: Callable[[str], Engine]) -> None:
    """An `expect:` group is watched from the engine's first run after the rule was loaded."""
    eng = engine(expecting("db1", "db2"))
    feed(eng, beat(1000, "db1"))
    eng.tick(1119)
    assert DB2 not in eng.table.rows
    eng.tick(1120)
    row = eng.table.rows[DB2]
    assert (row.node, row.summary) == ("db2", "db2 silent (last )")
    assert "none since the rule was loaded at 1970-01-01T00:16:40Z" in row.journal[0].text
    feed(eng, beat(1130, "db2"))
    assert row.status == "cleared"
    assert "db2:Heartbeat:: received" in row.journal[-1].text


def test_expected_groups_start_on_a_tick_too(engine: Callable[[str], Engine]) -> None:
    """No event at all: the first tick starts the watch."""
    eng = engine(expecting("db1"))
    eng.tick(50)
    eng.tick(169)
    assert DB1 not in eng.table.rows
    eng.tick(170)
    assert DB1 in eng.table.rows


def test_reload_keeps_unchanged_rules_and_restarts_changed_ones(
    engine: Callable[[str], Engine], ruleset: Callable[[str], RuleSet]
) -> None:
    """An unchanged rule keeps its watches; a changed one starts again from the reload."""
    eng = engine(expecting("db1"))
    eng.tick(0)
    eng.load(ruleset(expecting("db1")))
    eng.tick(100)
    eng.tick(120)
    assert DB1 in eng.table.rows  # timed from 0, not from the reload at 100
    eng = engine(expecting("db1"))
    eng.tick(0)
    eng.load(ruleset(expecting("db1").replace("for: 2m", "for: 3m")))
    eng.tick(100)
    eng.tick(279)
    assert DB1 not in eng.table.rows
    eng.tick(280)
    assert DB1 in eng.table.rows


def test_alert_left_open_by_a_reset_rule_is_cleared(
    engine: Callable[[str], Engine], ruleset: Callable[[str], RuleSet]
) -> None:
    """After a reload that reset the rule's state, the group's first event clears its old alert."""
    eng = engine(RULES)
    feed(eng, beat(0))
    eng.tick(120)
    eng.load(ruleset(RULES.replace("for: 2m", "for: 3m")))
    feed(eng, beat(200))
    row = eng.table.rows[DB1]
    assert row.status == "cleared"
    assert "alert raised before the rule's state was reset" in row.journal[-1].text


def test_alert_left_open_for_an_expected_group_is_cleared(
    engine: Callable[[str], Engine], ruleset: Callable[[str], RuleSet]
) -> None:
    """The same for an `expect:` group, which the new version watches from its load."""
    eng = engine(expecting("db1"))
    eng.tick(0)
    eng.tick(120)
    assert eng.table.rows[DB1].status == "open"
    eng.load(ruleset(expecting("db1").replace("for: 2m", "for: 3m")))
    eng.tick(130)
    feed(eng, beat(200))
    row = eng.table.rows[DB1]
    assert row.status == "cleared"
    assert "alert raised before the rule's state was reset" in row.journal[-1].text


def test_alert_cleared_by_someone_else_forgets_the_group(eng: Engine) -> None:
    """Clearing the alert by hand says the source is gone: no new alert until it reports."""
    feed(eng, beat(0))
    eng.tick(120)
    row = eng.table.rows[DB1]
    eng.table.clear(row, 130, "alice", "decommissioned")
    assert "node=db1 forgotten until it reports again" in row.journal[-1].text
    assert eng.operators["db-heartbeat"].size() == 0
    eng.tick(10_000)
    assert row.status == "cleared"


def test_expected_group_cleared_by_hand_is_timed_again(engine: Callable[[str], Engine]) -> None:
    """An expected group cannot be forgotten: after a manual clear its silence is timed anew."""
    eng = engine(expecting("db1"))
    eng.tick(0)
    eng.tick(120)
    row = eng.table.rows[DB1]
    eng.table.clear(row, 130, "alice", "looking into it")
    eng.tick(249)
    assert row.status == "cleared"
    eng.tick(250)
    assert eng.table.rows[DB1].status == "open"  # a new row: the cleared one was deleted at 250


def test_cap_refuses_new_groups_and_counts(engine: Callable[[str], Engine]) -> None:
    """At `max_groups` a new group is not watched (counted as cap_hit); known groups are."""
    eng = engine(RULES.replace("    for: 2m\n", "    for: 2m\n    max_groups: 1\n"))
    feed(eng, beat(0, "db1"))
    feed(eng, beat(0, "db2"))
    assert eng.stats.rule_events[("db-heartbeat", "cap_hit")] == 1
    eng.tick(120)
    assert DB1 in eng.table.rows and DB2 not in eng.table.rows


def test_when_and_match_select_the_heartbeats(engine: Callable[[str], Engine]) -> None:
    """Only events passing `match` and `when` are signs of life."""
    eng = engine(
        RULES.replace("    for: 2m\n", "    for: 2m\n    when: 'labels.role == \"primary\"'\n")
    )
    feed(eng, beat(0, labels={"role": "primary"}))
    feed(eng, beat(60, labels={"role": "replica"}))
    feed(eng, {"node": "db1", "alertgroup": "DiskFull", "timestamp": 90})
    eng.tick(120)
    assert DB1 in eng.table.rows
    assert [m.name for m in eng.operators["db-heartbeat"].event_keys] == ["alertgroup"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("for: 2m", "for: 0s", "for must be longer than 0s"),
        ("group_by: [node]", "group_by: [node]\n    expect: [{host: db1}]", "'host' is not in"),
        ("group_by: [node]", "group_by: [node, alertkey]\n    expect: [{node: db1}]", "no value"),
        ("group_by: [node]\n", "expect: [{node: db1}]\n", "expect needs group_by"),
        ("for: 2m", "within: 2m", "for"),
    ],
)
def test_rule_errors(ruleset: Callable[[str], RuleSet], old: str, new: str, message: str) -> None:
    """Bad durations and `expect:` entries that do not fit `group_by` are rule errors."""
    with pytest.raises(RuleSetError, match=message):
        ruleset(RULES.replace(old, new))


def test_expect_accepts_short_names_and_numbers(engine: Callable[[str], Engine]) -> None:
    """`expect:` keys may use a group_by entry's last segment; numbers are read as text."""
    eng = engine(
        RULES.replace("group_by: [node]", "group_by: [labels.port]\n    expect: [{port: 5432}]")
    )
    eng.tick(0)
    eng.tick(120)
    assert "correlator:db-heartbeat:5432" in eng.table.rows


def test_an_expect_error_points_at_the_entry(ruleset: Callable[[str], RuleSet]) -> None:
    """`check` names the line and column of the `expect:` entry at fault, not the rule's."""
    text = RULES.replace("group_by: [node]", "group_by: [node]\n    expect:\n      - {nodee: db1}")
    with pytest.raises(RuleSetError, match="'nodee' is not in") as err:
        ruleset(text)
    line = text.splitlines().index("      - {nodee: db1}") + 1
    assert f"rules.yaml:{line}:" in str(err.value)
