"""`kind: threshold`: `count` matching events within `window` raise one alert per group."""

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
  - name: site-outage
    kind: threshold
    match: ['alertgroup="NodeUnreachable"']
    group_by: [labels.site]
    count: 3
    window: 2m
    reset_on: ['alertgroup="SiteUplinkUp"']
    alert:
      severity: critical
      summary: "{{ count }} unreachable in {{ group.site }}"
"""
AMS = "correlator:site-outage:ams1"
FRA = "correlator:site-outage:fra1"


def down(at: float, node: str = "n1", site: str = "ams1", **extra: Any) -> dict[str, Any]:
    event = {
        "node": node,
        "alertgroup": "NodeUnreachable",
        "severity": "major",
        "labels": {"site": site},
        "timestamp": at,
    }
    return {**event, **extra}


def kinds(changes: list[Change], identifier: str) -> list[str]:
    return [c.kind for c in changes if c.alert is not None and c.alert.identifier == identifier]


def rules(extra: str) -> str:
    return RULES.replace("    window: 2m\n", f"    window: 2m\n{extra}")


@pytest.fixture
def eng(engine: Callable[[str], Engine]) -> Engine:
    return engine(RULES)


def test_count_events_within_window_raise_once(eng: Engine) -> None:
    """The third event within 2m raises the alert; the count below it raises nothing."""
    assert kinds(feed(eng, down(0)) + feed(eng, down(30, "n2")), AMS) == []
    assert kinds(feed(eng, down(60, "n3")), AMS) == ["alert.created"]
    row = eng.table.rows[AMS]
    assert (row.severity, row.summary, row.manager, row.agent) == (
        5,
        "3 unreachable in ams1",
        "correlator",
        "site-outage",
    )
    assert "raised: 3 matching events within 2m for labels.site=ams1" in row.journal[0].text


def test_window_is_closed_at_its_start(eng: Engine) -> None:
    """An event exactly `window` older than the newest still counts; one more second does not."""
    feed(eng, down(0))
    feed(eng, down(60))
    feed(eng, down(120))
    assert AMS in eng.table.rows
    feed(eng, down(1000, site="fra1"))
    feed(eng, down(1060, site="fra1"))
    feed(eng, down(1121, site="fra1"))
    assert FRA not in eng.table.rows


def test_members_get_parent_and_a_journal_note(eng: Engine) -> None:
    """Every row that counted, and every later matching row, points at the synthetic alert."""
    for i, at in enumerate((0, 10, 20, 30)):
        feed(eng, down(at, f"n{i}"))
    for i in range(4):
        row = eng.table.rows[f"n{i}:NodeUnreachable::"]
        assert row.parent == AMS
        assert "parent set to correlator:site-outage:ams1" in row.journal[-1].text


def test_later_events_fold_into_the_one_row(eng: Engine) -> None:
    """While raised, each matching event is one more occurrence: tally and count go up."""
    for at in (0, 10, 20, 30, 40):
        feed(eng, down(at))
    assert [a for a in eng.table.rows if a.startswith("correlator:")] == [AMS]
    row = eng.table.rows[AMS]
    assert (row.tally, row.summary) == (3, "5 unreachable in ams1")


def test_groups_count_separately(eng: Engine) -> None:
    """Events of another site never add to this site's count."""
    feed(eng, down(0, site="ams1"))
    feed(eng, down(10, site="fra1"))
    feed(eng, down(20, site="ams1"))
    feed(eng, down(30, site="fra1"))
    assert AMS not in eng.table.rows and FRA not in eng.table.rows
    feed(eng, down(40, site="fra1"))
    assert FRA in eng.table.rows and AMS not in eng.table.rows


def test_clears_after_window_without_a_matching_event(eng: Engine) -> None:
    """`clear_after` defaults to the window: 2m after the last event, not a moment earlier."""
    for at in (0, 10, 20, 50):
        feed(eng, down(at))
    assert kinds(eng.tick(169), AMS) == []
    changes = eng.tick(170)
    assert kinds(changes, AMS) == ["alert.cleared"]
    assert "no matching event for 2m (labels.site=ams1)" in eng.table.rows[AMS].journal[-1].text


def test_the_rule_clears_its_alert_before_the_tables_safety_net(eng: Engine) -> None:
    """Raised by the third event at 20: the rule's clear and the row's expiry are both due at
    140; the rule acts first, so the journal gives its reason, not a bare expiry."""
    for at in (0, 10, 20):
        feed(eng, down(at))
    assert kinds(eng.tick(140), AMS) == ["alert.cleared"]
    texts = [j.text for j in eng.table.rows[AMS].journal]
    assert "cleared: no matching event for 2m (labels.site=ams1)" in texts
    assert not any("expired" in t for t in texts)


def test_event_at_the_clear_deadline_keeps_it_open(eng: Engine) -> None:
    """Events at t come before timers at t: an event exactly at the deadline is in time."""
    for at in (0, 10, 20):
        feed(eng, down(at))
    feed(eng, down(140))
    assert eng.table.rows[AMS].status == "open"
    eng.tick(259)
    assert eng.table.rows[AMS].status == "open"
    eng.tick(260)
    assert eng.table.rows[AMS].status == "cleared"


def test_clear_after_and_safety_expiry(engine: Callable[[str], Engine]) -> None:
    """`clear_after` sets the quiet time; the row also carries it as expire_after."""
    eng = engine(rules("    clear_after: 10m\n"))
    for at in (0, 10, 20):
        feed(eng, down(at))
    row = eng.table.rows[AMS]
    assert row.expire_after == 600 and row.expire_at == 620
    eng.tick(619)
    assert row.status == "open"
    eng.tick(620)
    assert row.status == "cleared"


def test_new_burst_after_clear_reopens_and_counts_afresh(eng: Engine) -> None:
    """After the clear the window starts empty: it takes `count` new events to reopen the row."""
    for at in (0, 10, 20):
        feed(eng, down(at))
    eng.tick(140)
    assert eng.table.rows[AMS].status == "cleared"
    feed(eng, down(150))
    feed(eng, down(160))
    assert eng.table.rows[AMS].status == "cleared"
    assert kinds(feed(eng, down(170)), AMS) == ["alert.updated"]  # reopened
    assert (eng.table.rows[AMS].status, eng.table.rows[AMS].tally) == ("open", 2)


def test_out_of_order_events_count_when_inside_the_window(eng: Engine) -> None:
    """A late event inside [newest - window, newest] counts; one older than that is ignored."""
    feed(eng, down(100))
    feed(eng, down(130, "n2"))
    feed(eng, down(9, "n3"), now=130)  # older than 130 - 120: ignored
    assert AMS not in eng.table.rows
    assert eng.stats.rule_events[("site-outage", "late")] == 1
    feed(eng, down(10, "n4"), now=130)  # exactly at the window's start: counts
    assert eng.table.rows[AMS].status == "open"


def test_late_event_does_not_evict_newer_ones(eng: Engine) -> None:
    """Eviction is relative to the group's newest time, never to the late event's."""
    feed(eng, down(200))
    feed(eng, down(150), now=200)
    feed(eng, down(100), now=200)
    assert AMS in eng.table.rows


def test_resolutions_do_not_count(eng: Engine) -> None:
    """A NodeUnreachable resolution says the node is back: it is not one more failure."""
    feed(eng, down(0))
    feed(eng, down(10, type="resolution"))
    feed(eng, down(20, "n2", type="resolution"))
    assert AMS not in eng.table.rows


def test_resolutions_count_when_the_rule_names_type(engine: Callable[[str], Engine]) -> None:
    """A rule that says `type=...` itself decides which types count."""
    eng = engine(RULES.replace("'alertgroup=\"NodeUnreachable\"'", "'type=\"resolution\"'"))
    for at in (0, 10, 20):
        feed(eng, down(at, f"n{at}", type="resolution"))
    assert AMS in eng.table.rows


def test_reset_discards_the_count(eng: Engine) -> None:
    """A reset event drops what was counted: two more events are not enough."""
    feed(eng, down(0))
    feed(eng, down(10))
    feed(
        eng,
        {"node": "r1", "alertgroup": "SiteUplinkUp", "labels": {"site": "ams1"}, "timestamp": 15},
    )
    feed(eng, down(20))
    feed(eng, down(30))
    assert AMS not in eng.table.rows
    feed(eng, down(40))
    assert AMS in eng.table.rows


def test_reset_clears_a_raised_alert_and_bars_older_events(eng: Engine) -> None:
    """A reset newer than every counted event clears the alert; events before it no longer count."""
    for at in (0, 10, 20):
        feed(eng, down(at))
    reset = {"node": "r1", "alertgroup": "SiteUplinkUp", "labels": {"site": "ams1"}}
    feed(eng, {**reset, "timestamp": 30})
    row = eng.table.rows[AMS]
    assert row.status == "cleared"
    assert "reset by r1:SiteUplinkUp::" in row.journal[-1].text
    for at in (25, 26, 27):
        feed(eng, down(at), now=40)
    assert row.status == "cleared"


def test_reset_of_another_group_changes_nothing(eng: Engine) -> None:
    """Resets are per group, and a reset for an unknown group keeps no state."""
    feed(
        eng, {"node": "r", "alertgroup": "SiteUplinkUp", "labels": {"site": "zzz"}, "timestamp": 0}
    )
    assert eng.operators["site-outage"].size() == 0
    for at in (0, 10):
        feed(eng, down(at))
    feed(
        eng,
        {"node": "r", "alertgroup": "SiteUplinkUp", "labels": {"site": "fra1"}, "timestamp": 15},
    )
    feed(eng, down(20))
    assert AMS in eng.table.rows


def test_distinct_counts_values_not_events(engine: Callable[[str], Engine]) -> None:
    """With `distinct: node`, one noisy host never makes an outage; three hosts do."""
    eng = engine(rules("    distinct: node\n"))
    for at in range(0, 100, 10):
        feed(eng, down(at, "n1"))
    feed(eng, down(100, "n2"))
    assert AMS not in eng.table.rows
    feed(eng, down(110, "n3"))
    row = eng.table.rows[AMS]
    assert row.summary == "3 unreachable in ams1"
    feed(eng, down(120, "n1"))
    feed(eng, down(130, "n4"))
    assert (row.summary, row.tally) == ("4 unreachable in ams1", 3)


def test_distinct_values_of_a_raised_alert_are_bounded_and_counted(
    engine: Callable[[str], Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_VALUES a raised alert's count stops; each new value refused is a cap_hit."""
    from correlator.correlate import threshold

    monkeypatch.setattr(threshold, "MAX_VALUES", 4)
    eng = engine(rules("    distinct: node\n"))
    for at, node in enumerate(["n1", "n2", "n3", "n4", "n5", "n4", "n6"]):
        feed(eng, down(at, node))
    row = eng.table.rows[AMS]
    assert row.summary == "4 unreachable in ams1" and row.tally == 5
    assert eng.stats.rule_events[("site-outage", "cap_hit")] == 2  # n5 and n6, not n4 again


def test_distinct_value_leaves_the_window(engine: Callable[[str], Engine]) -> None:
    """A value counts from its newest event: once that is older than the window it is gone."""
    eng = engine(rules("    distinct: node\n"))
    feed(eng, down(0, "n1"))
    feed(eng, down(10, "n2"))
    feed(eng, down(100, "n2"))
    feed(eng, down(121, "n3"))  # n1 (0s) has left [1s, 121s]
    assert AMS not in eng.table.rows
    feed(eng, down(125, "n1"))
    assert AMS in eng.table.rows


def test_members_and_default_severity_in_templates(engine: Callable[[str], Engine]) -> None:
    """Templates see `members` (the counted rows) and `count`; severity defaults to the max."""
    eng = engine(
        """
        correlate:
          - name: storm
            kind: threshold
            match: ['alertgroup="NodeUnreachable"']
            count: 2
            window: 1m
            alert:
              summary: "{{ members | map(attribute='node') | join(',') }} ({{ count }})"
        """
    )
    feed(eng, down(0, "a", severity="minor"))
    feed(eng, down(5, "b", severity="critical"))
    row = eng.table.rows["correlator:storm"]
    assert (row.summary, row.severity, row.alertkey) == ("a,b (2)", 5, "")


def test_default_summary_names_what_was_counted(engine: Callable[[str], Engine]) -> None:
    """Without a summary template the alert says how many of what, within what, for which group."""
    eng = engine(
        RULES.replace('      summary: "{{ count }} unreachable in {{ group.site }}"\n', "")
    )
    for at in (0, 10, 20):
        feed(eng, down(at))
    assert eng.table.rows[AMS].summary == "3 matching events within 2m for labels.site=ams1"


def test_parent_of_another_open_alert_is_kept(eng: Engine) -> None:
    """A member already under another open parent (topology, incident) keeps it."""
    feed(eng, {"node": "core1", "alertgroup": "LinkDown", "timestamp": 0})
    feed(eng, down(0, "n1"))
    eng.table.rows["n1:NodeUnreachable::"].parent = "core1:LinkDown::"
    feed(eng, down(10, "n2"))
    feed(eng, down(20, "n3"))
    assert eng.table.rows["n1:NodeUnreachable::"].parent == "core1:LinkDown::"
    assert eng.table.rows["n2:NodeUnreachable::"].parent == AMS


def test_alert_cleared_by_an_operator_restarts_the_count(eng: Engine) -> None:
    """Someone else clearing the alert ends the episode: it takes `count` new events to reopen."""
    for at in (0, 10, 20):
        feed(eng, down(at))
    row = eng.table.rows[AMS]
    eng.table.clear(row, 25, "alice", "known issue")
    assert "counts afresh" in row.journal[-1].text
    feed(eng, down(30))
    feed(eng, down(40))
    assert row.status == "cleared"
    feed(eng, down(50))
    assert row.status == "open"


def test_idle_groups_are_forgotten(eng: Engine) -> None:
    """A group with no event for a window is dropped: state stays bounded."""
    feed(eng, down(0, site="a"))
    feed(eng, down(0, site="b"))
    op = eng.operators["site-outage"]
    assert op.size() == 2
    eng.tick(120)
    assert op.size() == 0


def test_timers_do_not_pile_up_per_event(eng: Engine) -> None:
    """One live timer per group, however many events: the heap does not grow with the storm."""
    for at in range(100):
        feed(eng, down(at, site="ams1"))
    assert eng.operators["site-outage"].size() == 1
    assert len(eng._timers) <= 4  # the table's expiry timer of the row, plus ours


def test_cap_refuses_new_groups_and_counts(engine: Callable[[str], Engine]) -> None:
    """At `max_groups` a new group is refused (counted as cap_hit); known groups go on."""
    eng = engine(rules("    max_groups: 1\n"))
    feed(eng, down(0, site="ams1"))
    feed(eng, down(1, site="fra1"))
    assert eng.stats.rule_events[("site-outage", "cap_hit")] == 1
    feed(eng, down(2, site="ams1"))
    feed(eng, down(3, site="ams1"))
    assert AMS in eng.table.rows


def test_no_group_by_means_one_group(engine: Callable[[str], Engine]) -> None:
    """Without `group_by` every matching event counts towards one `correlator:<rule>` alert."""
    eng = engine(RULES.replace("    group_by: [labels.site]\n", ""))
    feed(eng, down(0, site="a"))
    feed(eng, down(1, site="b"))
    feed(eng, down(2, site="c"))
    assert "correlator:site-outage" in eng.table.rows


def test_when_condition_filters_counted_events(engine: Callable[[str], Engine]) -> None:
    """`when:` narrows the counted events like `match:`."""
    eng = engine(rules("    when: 'severity >= 5'\n"))
    for at in (0, 10, 20):
        feed(eng, down(at))
    assert AMS not in eng.table.rows
    for at in (30, 40, 50):
        feed(eng, down(at, severity="critical"))
    assert AMS in eng.table.rows


def test_dispatch_keys(engine: Callable[[str], Engine]) -> None:
    """Without reset_on the match's equalities index the rule; with it only common ones do."""
    op = engine(RULES).operators["site-outage"]
    assert [m.name for m in op.event_keys] == []
    plain = engine(RULES.replace("    reset_on: ['alertgroup=\"SiteUplinkUp\"']\n", ""))
    assert [m.name for m in plain.operators["site-outage"].event_keys] == ["alertgroup"]


@pytest.mark.parametrize(
    ("old", "new", "message", "where"),
    [
        ("window: 2m", "window: 0s", "window must be longer than 0s", "rules.yaml:8:13:"),
        (
            "window: 2m",
            "window: 2m\n    clear_after: 0s",
            "clear_after must be longer than 0s",
            "rules.yaml:9:18:",
        ),
    ],
)
def test_durations_must_be_positive(
    ruleset: Callable[[str], RuleSet], old: str, new: str, message: str, where: str
) -> None:
    """A zero window or clear_after is a rule error located at the value at fault."""
    with pytest.raises(RuleSetError, match=message) as err:
        ruleset(RULES.replace(old, new))
    assert where in str(err.value)


def test_count_is_required(ruleset: Callable[[str], RuleSet]) -> None:
    """`count` has no default: a threshold without one is a rule error."""
    with pytest.raises(RuleSetError, match="count"):
        ruleset(RULES.replace("    count: 3\n", ""))


def test_alert_templates_rendering_empty_take_the_defaults(engine: Callable[[str], Engine]) -> None:
    """An `alert:` value that renders empty (or blank severity) is not set: the default applies."""
    eng = engine(
        """
        correlate:
          - name: storm
            kind: threshold
            match: ['alertgroup="NodeUnreachable"']
            group_by: [labels.site]
            count: 2
            window: 1m
            alert:
              identifier: "{{ labels.none }}"
              node: "{{ labels.none }}"
              alertgroup: "{{ labels.none }}"
              alertkey: "{{ labels.none }}"
              severity: "{{ labels.none }} "
              summary: "{% if count > 9 %}many{% endif %}"
        """
    )
    feed(eng, down(0, "a", severity="minor"))
    feed(eng, down(5, "b", severity="critical"))
    row = eng.table.rows["correlator:storm:ams1"]
    assert (row.node, row.alertgroup, row.alertkey) == ("correlator", "storm", "ams1")
    assert (row.severity, row.summary) == (5, "storm: 2 events")


def test_a_window_restored_as_a_deque_counts_on(engine: Callable[[str], Engine]) -> None:
    """Snapshots taken before the window became a list hold a deque: it counts on the same,
    with late events, expiry and resets."""
    from collections import deque

    plain, old = engine(RULES), engine(RULES)
    for e in (plain, old):
        feed(e, down(0, "n1"))
        feed(e, down(30, "n2"))
    (group,) = old.operators["site-outage"]._groups.values()
    group.times = deque(group.times)  # type: ignore[assignment]
    steps = [down(100, "n3"), down(90, "n4", "fra1"), down(95, "n5", "fra1")]
    steps += [down(400, "n6"), down(420, "n7"), {**down(430, "up"), "alertgroup": "SiteUplinkUp"}]
    for step in steps:
        assert [c.to_dict() for c in feed(old, step)] == [c.to_dict() for c in feed(plain, step)]
    assert type(group.times) is list
