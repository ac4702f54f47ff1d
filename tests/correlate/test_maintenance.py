"""`kind: maintenance`: alerts are held while a scheduled window is active."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.errors import RuleSetError
from correlator.model import Change
from correlator.ruleset.loader import RuleSet
from correlator.testing import feed

START = datetime(2026, 1, 10, 2, 0, tzinfo=UTC).timestamp()
END = START + 7200
RULES = """
correlate:
  - name: planned
    kind: maintenance
    match: ['node="core-r1"']
    schedule: {start: 2026-01-10T02:00:00Z, end: 2026-01-10T04:00:00Z}
"""
LINK = "core-r1:LinkDown:ge-0/0/1:"


def link(at: float, node: str = "core-r1", kind: str = "problem") -> dict[str, Any]:
    return {
        "node": node,
        "alertgroup": "LinkDown",
        "alertkey": "ge-0/0/1",
        "severity": "major",
        "type": kind,
        "timestamp": at,
    }


def kinds(changes: list[Change]) -> list[str]:
    return [c.kind for c in changes]


@pytest.fixture
def eng(engine: Callable[[str], Engine]) -> Engine:
    return engine(RULES)


def test_an_alert_born_inside_the_window_is_held_and_marked(eng: Engine) -> None:
    """Suppressed by the rule, with `send_resolved: "false"` so its recovery is not sent."""
    out = feed(eng, link(START + 60))
    row = eng.table.get(LINK)
    assert row is not None and row.suppressed_by == "planned"
    assert row.annotations == {"maintenance": "planned", "send_resolved": "false"}
    assert kinds(out) == ["alert.created", "alert.suppressed"]
    assert any("no recovery notification" in j.text for j in row.journal)


def test_a_recovery_inside_the_window_stays_unnotified(eng: Engine) -> None:
    """Cleared inside: released at the end but still marked send_resolved=false."""
    feed(eng, link(START + 60))
    feed(eng, link(END - 60, kind="resolution"))
    out = eng.tick(END)
    row = eng.table.get(LINK)
    assert row is not None and row.status == "cleared" and row.suppressed_by is None
    assert row.annotations["send_resolved"] == "false"
    assert kinds(out) == ["alert.unsuppressed"]
    assert kinds(eng.tick(END + 60)) == ["alert.deleted"]
    assert eng.operators["planned"].size() == 0


def test_still_open_at_the_end_it_is_released_unmarked(eng: Engine) -> None:
    """A problem outlasting the window notifies like any other, recovery included."""
    feed(eng, link(START + 60))
    assert kinds(eng.tick(END - 1)) == []
    out = eng.tick(END)
    row = eng.table.get(LINK)
    assert row is not None and row.suppressed_by is None and row.annotations == {}
    assert kinds(out) == ["alert.unsuppressed"]


def test_an_alert_open_before_the_window_is_held_from_start_to_end(eng: Engine) -> None:
    """The start and end are timers: no event is needed for either."""
    feed(eng, link(START - 600))
    out = eng.tick(START)
    row = eng.table.get(LINK)
    assert row is not None and row.suppressed_by == "planned"
    assert "send_resolved" not in row.annotations  # born before: its recovery is notified
    assert kinds(out) == ["alert.suppressed"]
    assert kinds(eng.tick(END)) == ["alert.unsuppressed"]
    assert row.suppressed_by is None


def test_a_problem_stamped_before_the_start_but_delivered_inside_is_held(eng: Engine) -> None:
    """The window asks whether notifications flow *now*: arrival inside it holds the alert."""
    out = feed(eng, link(START - 60), now=START + 60)
    row = eng.table.get(LINK)
    assert row is not None and row.suppressed_by == "planned"
    assert row.annotations == {"maintenance": "planned", "send_resolved": "false"}
    assert kinds(out) == ["alert.created", "alert.suppressed"]


def test_a_recovery_delivered_after_the_end_is_notified(eng: Engine) -> None:
    """Resolved inside the window but delivered after its end: the firing was notified at the
    end (released open, unmarked), so its recovery is notified too, stamped when it happened."""
    feed(eng, link(START + 60))
    out = eng.tick(END)
    row = eng.table.get(LINK)
    assert row is not None and row.status == "open" and row.annotations == {}
    assert kinds(out) == ["alert.unsuppressed"]
    out = feed(eng, link(END - 60, kind="resolution"), now=END + 60)
    assert kinds(out) == ["alert.cleared"]
    assert row.status == "cleared" and row.state_change == END - 60
    assert "send_resolved" not in row.annotations and row.suppressed_by is None


def test_the_window_is_half_open(eng: Engine) -> None:
    """An alert at exactly start is held; one at exactly end is not."""
    feed(eng, link(START))
    other = link(END, node="core-r1")
    other["alertkey"] = "ge-0/0/2"
    feed(eng, other)
    assert eng.table.rows[LINK].suppressed_by == "planned"
    assert eng.table.rows["core-r1:LinkDown:ge-0/0/2:"].suppressed_by is None


def test_other_nodes_and_times_are_not_held(eng: Engine) -> None:
    """Only matching alerts inside the window are suppressed."""
    feed(eng, link(START + 60, node="core-r2"))
    feed(eng, link(END + 60))
    assert eng.table.rows["core-r2:LinkDown:ge-0/0/1:"].suppressed_by is None
    assert eng.table.rows[LINK].suppressed_by is None


def test_a_reopen_outside_the_window_drops_the_mark(ruleset: Callable[[str], RuleSet]) -> None:
    """Born inside, cleared, reopened after the window: a new episode that notifies."""
    eng = Engine(ruleset(RULES), delete_cleared_after=86400)  # keep the cleared row
    feed(eng, link(START + 60))
    feed(eng, link(START + 120, kind="resolution"))
    feed(eng, link(END + 10))
    row = eng.table.rows[LINK]
    assert row.status == "open" and row.suppressed_by is None and row.annotations == {}


def test_a_reopen_inside_the_window_is_marked_again(eng: Engine) -> None:
    """Cleared and reopened inside the window: still held, still no recovery notification."""
    feed(eng, link(START - 60))
    eng.tick(START)
    feed(eng, link(START + 60, kind="resolution"))
    feed(eng, link(START + 120))
    row = eng.table.rows[LINK]
    assert row.suppressed_by == "planned" and row.annotations["send_resolved"] == "false"


def test_a_hold_behind_another_suppressor_is_published(eng: Engine) -> None:
    """Already suppressed by another rule: hold and release still show as updates."""
    feed(eng, link(START - 60))
    row = eng.table.rows[LINK]
    eng.suppress(row, START - 30, "inhibit-x", "test")
    assert kinds(eng.tick(START - 30)) == ["alert.suppressed"]
    assert kinds(eng.tick(START)) == ["alert.updated"]
    assert eng.suppressors(row) == ("inhibit-x", "planned") and eng.in_maintenance(row)
    assert kinds(eng.tick(END)) == ["alert.updated"]
    assert row.suppressed_by == "inhibit-x" and not eng.in_maintenance(row)


def test_a_cron_window_follows_its_timezone(engine: Callable[[str], Engine]) -> None:
    """`0 2 * * *` for 2h in Europe/Amsterdam is 01:00-03:00 UTC in winter."""
    eng = engine(
        """
        correlate:
          - name: nightly
            kind: maintenance
            match: ['node="core-r1"']
            schedule: {cron: "0 2 * * *", duration: 2h, timezone: Europe/Amsterdam}
        """
    )
    day = datetime(2026, 1, 12, tzinfo=UTC).timestamp()
    feed(eng, link(day + 3600 + 60))
    assert eng.table.rows[LINK].suppressed_by == "nightly"
    eng.tick(day + 3 * 3600)
    assert eng.table.rows[LINK].suppressed_by is None
    eng.tick(day + 86400 + 3600)  # the next night's window holds it again
    assert eng.table.rows[LINK].suppressed_by == "nightly"


def test_several_windows_and_a_duration(engine: Callable[[str], Engine]) -> None:
    """`schedule` may be a list; `start` + `duration` is an absolute window."""
    eng = engine(
        """
        correlate:
          - name: two
            kind: maintenance
            schedule:
              - {start: "2026-01-10T02:00:00", duration: 1h}
              - {start: "2026-01-10T05:00:00", end: "2026-01-10T06:00:00", timezone: Europe/Amsterdam}
        """
    )
    feed(eng, link(START - 60))
    seen = [
        (t, bool(eng.tick(START + t) and eng.table.rows[LINK].suppressed_by)) for t in (0, 3600)
    ]
    assert seen == [(0, True), (3600, False)]
    eng.tick(START + 2 * 3600)  # 05:00 Amsterdam is 04:00 UTC
    assert eng.table.rows[LINK].suppressed_by == "two"
    eng.tick(START + 3 * 3600)
    assert eng.table.rows[LINK].suppressed_by is None


def test_a_rule_loaded_while_alerts_are_open_holds_them(
    engine: Callable[[str], Engine], ruleset: Callable[[str], RuleSet]
) -> None:
    """Reload during an outage: the new window also covers alerts already open."""
    eng = engine("{}")
    feed(eng, link(START + 60))
    eng.load(ruleset(RULES))
    eng.tick(START + 70)
    row = eng.table.rows[LINK]
    assert row.suppressed_by == "planned" and "send_resolved" not in row.annotations


def test_a_past_schedule_tracks_nothing(engine: Callable[[str], Engine]) -> None:
    """No window ahead: the rule holds no state."""
    eng = engine(RULES)
    feed(eng, link(END + 60))
    assert eng.operators["planned"].size() == 0


def test_the_cap_bounds_tracked_alerts(engine: Callable[[str], Engine]) -> None:
    """max_alerts refuses more alerts and counts it."""
    eng = engine(RULES.replace("match: ['node=\"core-r1\"']", "max_alerts: 1"))
    feed(eng, link(START + 1))
    feed(eng, link(START + 2, node="core-r2"))
    assert eng.table.rows["core-r2:LinkDown:ge-0/0/1:"].suppressed_by is None
    assert eng.stats.rule_events[("planned", "cap_hit")] == 1


def test_the_cap_counts_each_alert_once(engine: Callable[[str], Engine]) -> None:
    """A held alert is one tracked alert (cleared or not) until the window's end lets it go."""
    eng = engine(RULES.replace("match: ['node=\"core-r1\"']", "max_alerts: 2"))
    feed(eng, link(START + 1))
    feed(eng, link(START + 2, node="core-r2"))
    feed(eng, link(START + 3, node="core-r3"))
    held = {i for i, a in eng.table.rows.items() if a.suppressed_by == "planned"}
    assert held == {LINK, "core-r2:LinkDown:ge-0/0/1:"}
    assert (
        eng.stats.rule_events[("planned", "cap_hit")] == 1 and eng.operators["planned"].size() == 2
    )
    feed(eng, link(START + 4, kind="resolution"))  # cleared but still held: still counted
    feed(eng, link(START + 5, node="core-r4"))
    assert (
        eng.operators["planned"].size() == 2 and eng.stats.rule_events[("planned", "cap_hit")] == 2
    )
    eng.tick(END)
    assert eng.operators["planned"].size() == 0


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("{start: 2026-01-10T02:00:00Z}", "exactly one of end and duration"),
        ("{start: 2026-01-10T02:00:00Z, end: 2026-01-10T01:00:00Z}", "end must be after"),
        ("{cron: '0 2 * * *'}", "needs a duration"),
        ("{cron: 'every night', duration: 1h}", "bad cron expression"),
        ("{cron: '0 2 * * *', duration: 1h, start: 2026-01-10T02:00:00Z}", "not both"),
        ("{cron: '0 2 * * *', duration: 1h, timezone: Mars/Olympus}", "unknown timezone"),
        ("[]", "at least 1 item"),
    ],
)
def test_bad_schedules_are_rule_errors(
    ruleset: Callable[[str], RuleSet], schedule: str, message: str
) -> None:
    """Each schedule mistake is reported at load time."""
    text = f"correlate:\n  - name: m\n    kind: maintenance\n    schedule: {schedule}\n"
    with pytest.raises(RuleSetError, match=message):
        ruleset(text)


def test_cap_hit_counts_a_refused_row_once_per_episode(engine: Callable[[str], Engine]) -> None:
    """At the cap, a refused row's updates are refused silently; a reopen counts again."""
    eng = engine(RULES.replace("match: ['node=\"core-r1\"']", "max_alerts: 1"))
    feed(eng, link(START + 1))
    feed(eng, link(START + 2, node="core-r2"))
    for at in range(3, 7):
        feed(eng, {**link(START + at, node="core-r2"), "summary": f"down ({at})"})  # `updated`
    other = eng.table.rows["core-r2:LinkDown:ge-0/0/1:"]
    assert other.tally == 5 and other.suppressed_by is None
    assert eng.stats.rule_events[("planned", "cap_hit")] == 1
    feed(eng, link(START + 10, node="core-r2", kind="resolution"))
    feed(eng, link(START + 11, node="core-r2"))
    assert eng.stats.rule_events[("planned", "cap_hit")] == 2


def test_a_cron_that_never_fires_holds_nothing(engine: Callable[[str], Engine]) -> None:
    """February 30th never comes: the rule loads and stays inert."""
    eng = engine(
        """
        correlate:
          - name: never
            kind: maintenance
            schedule: {cron: "0 0 30 2 *", duration: 1h}
        """
    )
    feed(eng, link(START))
    assert eng.table.rows[LINK].suppressed_by is None
    assert eng.operators["never"].size() == 0


STAGING = """
correlate:
  - name: planned
    kind: maintenance
    match: ['labels.env="staging"']
    schedule: {start: 2026-01-10T02:00:00Z, end: 2026-01-10T04:00:00Z}
"""


def staged(at: float, env: str, kind: str = "problem") -> dict[str, Any]:
    return {**link(at, kind=kind), "labels": {"env": env}}


def test_an_alert_that_comes_to_match_inside_the_window_is_held(
    engine: Callable[[str], Engine],
) -> None:
    """Labels changed by a dedup update to match: held at once, unmarked (its firing was sent)."""
    eng = engine(STAGING)
    feed(eng, staged(START + 60, "prod"))
    out = feed(eng, staged(START + 120, "staging"))
    row = eng.table.rows[LINK]
    assert kinds(out) == ["alert.updated", "alert.suppressed"]
    assert row.suppressed_by == "planned" and row.annotations == {}
    out = eng.tick(END)
    assert kinds(out) == ["alert.unsuppressed"] and row.suppressed_by is None


def test_an_alert_that_comes_to_match_before_the_window_is_held_at_start(
    engine: Callable[[str], Engine],
) -> None:
    """Coming to match ahead of the window arms the boundary like a matching creation."""
    eng = engine(STAGING)
    feed(eng, staged(START - 120, "prod"))
    feed(eng, staged(START - 60, "staging"))
    assert eng.table.rows[LINK].suppressed_by is None
    assert kinds(eng.tick(START)) == ["alert.suppressed"]


def test_a_held_alert_that_stops_matching_is_released_at_once(
    engine: Callable[[str], Engine],
) -> None:
    """Born inside and held; relabelled out of scope: released, unmarked, journal says why."""
    eng = engine(STAGING)
    feed(eng, staged(START + 60, "staging"))
    out = feed(eng, staged(START + 120, "prod"))
    row = eng.table.rows[LINK]
    assert kinds(out) == ["alert.updated", "alert.unsuppressed"]
    assert row.suppressed_by is None and row.annotations == {}
    texts = [j.text for j in row.journal if j.who == "planned"]
    assert texts[-2:] == [
        "released open (no longer matches the rule): its recovery will be notified",
        "released: no longer matches the rule",
    ]
    assert eng.operators["planned"].size() == 0
    assert kinds(eng.tick(END)) == []


def test_a_hold_behind_another_suppressor_does_not_loop_on_its_own_update(
    engine: Callable[[str], Engine],
) -> None:
    """The hold publishes `modified` back to the rule itself: one hold, one update, no loop."""
    eng = engine(STAGING)
    feed(eng, staged(START + 60, "prod"))
    row = eng.table.rows[LINK]
    eng.suppress(row, START + 60, "inhibit-x", "test")
    assert kinds(eng.tick(START + 60)) == ["alert.suppressed"]
    out = feed(eng, staged(START + 120, "staging"))
    assert kinds(out) == ["alert.updated", "alert.updated"]
    assert eng.suppressors(row) == ("inhibit-x", "planned")
    assert sum("in maintenance" in j.text for j in row.journal) == 1


def test_a_cleared_row_touched_by_a_rule_keeps_its_hold(
    engine: Callable[[str], Engine],
) -> None:
    """A cleared row keeps the membership it had while open: a clear sets severity 0."""
    eng = engine(STAGING.replace("['labels.env=\"staging\"']", "['severity>=major']"))
    feed(eng, link(START + 60))
    feed(eng, link(START + 120, kind="resolution"))
    row = eng.table.rows[LINK]
    eng.modify(row, START + 130, "someone", "a note on the cleared row")
    eng.run_timers_before(START + 130)
    assert row.status == "cleared" and row.suppressed_by == "planned"


def test_a_held_cleared_row_reopening_out_of_scope_is_released(
    engine: Callable[[str], Engine],
) -> None:
    """A reopen that relabels the row out of scope releases it (a reopen is not an update)."""
    eng = engine(STAGING)
    feed(eng, staged(START + 60, "staging"))
    feed(eng, link(START + 120, kind="resolution"))
    out = feed(eng, staged(START + 180, "prod"))
    row = eng.table.rows[LINK]
    assert kinds(out) == ["alert.updated", "alert.unsuppressed"]
    assert row.status == "open" and row.suppressed_by is None and row.annotations == {}
