"""`kind: pair`: a first event must be followed by a second within `within`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.correlate.synthetic import SyntheticAlert
from correlator.engine import Engine
from correlator.errors import RuleSetError
from correlator.model import Alert, Change
from correlator.ruleset.loader import RuleSet
from correlator.testing import feed

RULES = """
correlate:
  - name: batch-late
    kind: pair
    first: ['alertgroup="JobStarted"']
    second: ['alertgroup="JobFinished"']
    on: [node, alertkey]
    within: 1h
    alert:
      severity: major
      summary: "job {{ alertkey }} on {{ node }} did not finish within 1h"
      labels: {team: "{{ labels.team }}"}
"""
ALERT = "correlator:batch-late:etl-1:nightly"
NAME = "batch-late"


def job(at: float, group: str, node: str = "etl-1", key: str = "nightly") -> dict[str, Any]:
    return {
        "node": node,
        "alertgroup": group,
        "alertkey": key,
        "type": "info",
        "expire_after": "1d",
        "labels": {"team": "data"},
        "timestamp": at,
    }


def created(changes: list[Change], identifier: str = ALERT) -> list[Change]:
    return [
        c
        for c in changes
        if c.alert and c.alert.identifier == identifier and c.kind == "alert.created"
    ]


@pytest.fixture
def eng(engine: Callable[[str], Engine]) -> Engine:
    return engine(RULES)


def test_second_in_time_raises_nothing(eng: Engine) -> None:
    """A finish within `within` of the start closes the pair: no alert, no state left."""
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(1800, "JobFinished"))
    eng.tick(10_000)
    assert eng.table.get(ALERT) is None
    assert eng.operators[NAME].size() == 0


def test_missing_second_raises_at_first_plus_within(eng: Engine) -> None:
    """No finish: the alert is raised exactly at first+within, from the rule's `alert:`."""
    feed(eng, job(100, "JobStarted"))
    assert created(eng.tick(3699)) == []
    changes = created(eng.tick(3700))
    assert len(changes) == 1 and changes[0].at == 3700
    row = eng.table.get(ALERT)
    assert row is not None
    assert (row.severity, row.manager, row.agent, row.status) == (4, "correlator", NAME, "open")
    assert row.summary == "job nightly on etl-1 did not finish within 1h"
    assert row.labels == {"team": "data"}
    assert row.first_occurrence == 3700
    assert any(e.who == NAME and "within 1h" in e.text for e in row.journal)


def test_second_exactly_at_deadline_is_in_time(eng: Engine) -> None:
    """The window is closed: a finish at exactly first+within still completes the pair."""
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(3600, "JobFinished"))
    eng.tick(3600)
    eng.tick(7200)
    assert eng.table.get(ALERT) is None


def test_repeated_first_neither_extends_nor_restarts(eng: Engine) -> None:
    """A second start while the pair is open leaves the deadline at the first start + within."""
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(1800, "JobStarted"))
    changes = created(eng.tick(3600))
    assert len(changes) == 1
    assert eng.operators[NAME].size() == 1  # only the raised alert is tracked now


def test_late_second_clears_the_raised_alert(eng: Engine) -> None:
    """A finish after the alert was raised clears it, with a journal note naming the second."""
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(5000, "JobFinished"))  # the deadline timer at 3600 fires first
    row = eng.table.get(ALERT)
    assert row is not None and row.status == "cleared" and row.severity == 0
    note = row.journal[-1]
    assert note.who == NAME and "etl-1:JobFinished:nightly:" in note.text
    assert "23m20s after the 1h deadline" in note.text
    assert eng.operators[NAME].size() == 1  # the second, remembered for a redelivered first
    eng.tick(5000 + 3600)
    assert eng.operators[NAME].size() == 0


def test_late_second_before_the_timer_fired_raises_then_clears(eng: Engine) -> None:
    """Live clock: a finish stamped after the deadline, before any tick, still counts as late."""
    feed(eng, job(0, "JobStarted"))
    changes = eng.process(job(3700, "JobFinished"), 3700)  # no tick in between
    kinds = [c.kind for c in changes if c.alert and c.alert.identifier == ALERT]
    assert kinds == ["alert.created", "alert.cleared"]
    row = eng.table.get(ALERT)
    assert row is not None and row.first_occurrence == 3600


def test_second_without_first_is_ignored(eng: Engine) -> None:
    """A finish nothing waits for raises nothing and is counted."""
    feed(eng, job(0, "JobFinished"))
    eng.tick(100_000)
    assert eng.table.get(ALERT) is None
    assert eng.stats.rule_events[(NAME, "unpaired_second")] == 1


def test_pairs_are_per_on_values(eng: Engine) -> None:
    """Each node/job has its own pair: one finishing does not close another."""
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(0, "JobStarted", node="etl-2"))
    feed(eng, job(600, "JobFinished", node="etl-2"))
    eng.tick(3600)
    assert eng.table.get(ALERT) is not None
    assert eng.table.get("correlator:batch-late:etl-2:nightly") is None


def test_second_delivered_before_its_first_completes_the_pair(eng: Engine) -> None:
    """Reordered delivery: a finish seen before its own (earlier) start still closes it."""
    feed(eng, job(110, "JobFinished"))
    feed(eng, job(100, "JobStarted"), now=110)
    eng.tick(10_000)
    assert eng.table.get(ALERT) is None
    assert eng.operators[NAME].size() == 0


def test_orphan_second_does_not_complete_a_later_first(eng: Engine) -> None:
    """A finish older than the next start belongs to an earlier run: the new run is still timed."""
    feed(eng, job(0, "JobFinished"))
    feed(eng, job(60, "JobStarted"))
    assert len(created(eng.tick(3660))) == 1


def test_earlier_first_delivered_late_moves_the_deadline_earlier(eng: Engine) -> None:
    """The pair starts at the first `first` by event time, whatever the arrival order."""
    feed(eng, job(200, "JobStarted"))
    feed(eng, job(100, "JobStarted"), now=200)
    changes = created(eng.tick(3700))
    assert len(changes) == 1 and changes[0].at == 3700


def test_new_run_after_completion_is_timed_again(eng: Engine) -> None:
    """After a pair completes, the next start opens a fresh pair with its own deadline."""
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(100, "JobFinished"))
    feed(eng, job(86_400, "JobStarted"))
    assert created(eng.tick(86_400 + 3599)) == []
    assert len(created(eng.tick(86_400 + 3600))) == 1


def test_next_missed_run_raises_again(ruleset: Callable[[str], RuleSet]) -> None:
    """Run 1 late then finished (alert cleared); run 2 missed: the same row reopens."""
    eng = Engine(ruleset(RULES), delete_cleared_after=86_400)
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(4000, "JobFinished"))
    feed(eng, job(10_000, "JobStarted"))
    changes = eng.tick(13_600)
    row = eng.table.get(ALERT)
    assert row is not None and row.status == "open" and row.tally == 2
    assert [c.kind for c in changes if c.alert is row] == ["alert.updated"]
    assert sum("raised:" in e.text for e in row.journal) == 2


def test_alert_cleared_elsewhere_stops_tracking(engine: Callable[[str], Engine]) -> None:
    """A raised alert that expires is forgotten: a later finish does not touch the table."""
    eng = engine(RULES.replace("severity: major", "severity: major\n      expire_after: 10m"))
    feed(eng, job(0, "JobStarted"))
    eng.tick(3600)
    eng.tick(3600 + 600)
    row = eng.table.get(ALERT)
    assert row is not None and row.status == "cleared"
    assert eng.operators[NAME].size() == 0
    journal = len(row.journal)
    feed(eng, job(4300, "JobFinished"))
    assert len(row.journal) == journal


def test_cap_refuses_new_pairs_and_counts(engine: Callable[[str], Engine]) -> None:
    """With max_pairs reached, a new first is refused and `cap_hit` is counted."""
    eng = engine(RULES.replace("within: 1h", "within: 1h\n    max_pairs: 1"))
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(0, "JobStarted", node="etl-2"))
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 1
    eng.tick(3600)
    assert eng.table.get(ALERT) is not None
    assert eng.table.get("correlator:batch-late:etl-2:nightly") is None


def test_scope_and_dispatch_keys(engine: Callable[[str], Engine]) -> None:
    """`match` scopes both sides; equality matchers common to first and second become keys."""
    eng = engine(
        """
        correlate:
          - name: hb
            kind: pair
            match: ['labels.env="prod"']
            first: ['alertgroup="Heartbeat"', 'alertkey="ping"']
            second: ['alertgroup="Heartbeat"', 'alertkey="pong"']
            on: [node]
            within: 30s
        """
    )
    op = eng.operators["hb"]
    assert sorted((m.name, m.value) for m in op.event_keys) == [
        ("alertgroup", "Heartbeat"),
        ("labels.env", "prod"),
    ]
    base = {"node": "n1", "alertgroup": "Heartbeat", "type": "info"}
    feed(eng, {**base, "alertkey": "ping", "labels": {"env": "dev"}, "timestamp": 0})
    feed(eng, {**base, "alertkey": "ping", "labels": {"env": "prod"}, "timestamp": 0})
    eng.tick(30)
    row = eng.table.get("correlator:hb:n1")
    assert row is not None and row.severity == 1  # default: the first event's severity


def test_within_must_be_positive(ruleset: Callable[[str], RuleSet]) -> None:
    """A zero window is a rule error, reported at the rule."""
    with pytest.raises(RuleSetError, match="within must be longer than 0s"):
        ruleset(RULES.replace("within: 1h", "within: 0s"))


def test_when_condition_applies_to_both_sides(engine: Callable[[str], Engine]) -> None:
    """A CEL `when` scopes first and second: events it rejects neither open nor close pairs."""
    eng = engine(RULES.replace("within: 1h", "within: 1h\n    when: 'labels.team == \"data\"'"))
    feed(eng, {**job(0, "JobStarted", node="etl-2"), "labels": {"team": "web"}})
    feed(eng, job(0, "JobStarted"))
    feed(eng, {**job(60, "JobFinished"), "labels": {"team": "web"}})
    eng.tick(3600)
    assert eng.table.get(ALERT) is not None
    assert eng.table.get("correlator:batch-late:etl-2:nightly") is None


def test_orphan_second_is_forgotten_after_within(eng: Engine) -> None:
    """An unpaired second is remembered for `within` only; repeats keep the newest time."""
    feed(eng, job(0, "JobFinished"))
    feed(eng, job(100, "JobFinished"))
    feed(eng, job(50, "JobFinished"), now=100)
    assert eng.operators[NAME].size() == 1
    eng.tick(3650)
    assert eng.operators[NAME].size() == 1  # the timer of the first orphan time is stale
    eng.tick(3700)
    assert eng.operators[NAME].size() == 0


def test_cap_also_bounds_remembered_orphans(engine: Callable[[str], Engine]) -> None:
    """Unpaired seconds count against max_pairs too."""
    eng = engine(RULES.replace("within: 1h", "within: 1h\n    max_pairs: 1"))
    feed(eng, job(0, "JobFinished"))
    feed(eng, job(0, "JobFinished", node="etl-2"))
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 1
    assert eng.operators[NAME].size() == 1


def test_second_older_than_the_open_first_does_not_close_it(eng: Engine) -> None:
    """A finish stamped before the open pair's start belongs to an earlier run: still timed."""
    feed(eng, job(100, "JobStarted"))
    feed(eng, job(50, "JobFinished"), now=100)
    assert eng.stats.rule_events[(NAME, "unpaired_second")] == 1
    assert len(created(eng.tick(3700))) == 1


def test_redelivered_first_after_completion_is_absorbed(eng: Engine) -> None:
    """At-least-once delivery: the start of a completed run, delivered again, opens no pair."""
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(120, "JobFinished"))
    feed(eng, job(0, "JobStarted"), now=130)
    assert created(eng.tick(10_000)) == []
    assert eng.table.get(ALERT) is None
    assert eng.operators[NAME].size() == 0


def test_redelivered_first_after_a_late_second_raises_nothing_again(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """A run whose alert a late finish cleared is complete: its start again does not reopen it."""
    eng = Engine(ruleset(RULES.replace("within: 1h", "within: 2m")), delete_cleared_after=86_400)
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(150, "JobFinished"))
    changes = feed(eng, job(0, "JobStarted"), now=160)  # not late: inside max_lateness
    changes += eng.tick(10_000)
    row = eng.table.get(ALERT)
    assert row is not None and row.status == "cleared" and row.tally == 1
    assert [c for c in changes if c.alert is row] == []


def test_redelivered_first_of_a_completed_run_leaves_the_next_run_alone(eng: Engine) -> None:
    """A duplicate of run 1's start, arriving while run 2 is open, does not move run 2's deadline."""
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(60, "JobFinished"))
    feed(eng, job(200, "JobStarted"))
    feed(eng, job(0, "JobStarted"), now=200)
    assert created(eng.tick(3799)) == []
    assert len(created(eng.tick(3800))) == 1


def test_remembered_second_is_forgotten_after_the_late_grace(
    engine: Callable[[str], Engine],
) -> None:
    """A second is kept for max(within, 5m): long enough for a first still accepted as not late."""
    eng = engine(RULES.replace("within: 1h", "within: 30s"))
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(10, "JobFinished"))
    eng.tick(309)
    assert eng.operators[NAME].size() == 1
    feed(eng, job(0, "JobStarted"), now=309)  # still absorbed
    eng.tick(310)
    assert eng.operators[NAME].size() == 0
    assert eng.table.get(ALERT) is None


def test_remembered_second_lasts_the_engines_max_lateness(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """With `max_lateness` 2m a second is kept max(within, 2m), not the default 5m."""
    eng = Engine(ruleset(RULES.replace("within: 1h", "within: 30s")), max_lateness=120)
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(10, "JobFinished"))
    eng.tick(129)
    assert eng.operators[NAME].size() == 1
    eng.tick(130)
    assert eng.operators[NAME].size() == 0


def test_default_severity_is_never_clear(engine: Callable[[str], Engine]) -> None:
    """A first of severity 0 (clear) and no `alert.severity`: the open alert is major, not 0."""
    eng = engine(RULES.replace("      severity: major\n", ""))
    feed(eng, {**job(0, "JobStarted"), "severity": "clear"})
    feed(eng, {**job(0, "JobStarted", node="etl-2"), "severity": "warning"})
    eng.tick(3600)
    row = eng.table.get(ALERT)
    assert row is not None and row.status == "open" and row.severity == 4
    other = eng.table.get("correlator:batch-late:etl-2:nightly")
    assert other is not None and other.severity == 2  # a real severity is kept


def test_synthetic_default_severity_of_members() -> None:
    """Any kind's default: the highest member severity if at least 1, else major (4)."""
    spec = SyntheticAlert("r", None)

    def member(severity: int) -> Alert:
        return Alert(identifier=f"m{severity}", node="n", alertgroup="g", severity=severity)

    assert spec.build([], 0, members=[member(0), member(0)]).severity == 4
    assert spec.build([], 0, members=[member(0), member(1)]).severity == 1
    assert spec.build([], 0, members=[member(5), member(2)]).severity == 5
    assert spec.build([], 0, trigger=member(0)).severity == 4
    assert spec.build([], 0).severity == 4


def test_a_reloaded_rule_clears_the_old_versions_alert_when_the_run_ends(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """A changed rule starts with empty state; the finish still clears what the old one raised."""
    eng = Engine(ruleset(RULES))
    feed(eng, job(0, "JobStarted"))
    eng.tick(3600)
    eng.load(ruleset(RULES.replace("severity: major", "severity: critical")))
    changes = feed(eng, job(4000, "JobFinished"))
    row = eng.table.get(ALERT)
    assert row is not None and row.status == "cleared"
    assert [c.kind for c in changes if c.alert is row] == ["alert.cleared"]
    assert "raised before the rule's state was reset" in row.journal[-1].text
    assert ("batch-late", "unpaired_second") not in eng.stats.rule_events


def test_a_finish_does_not_clear_an_alert_of_a_later_run(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """An untracked alert raised for a run that began after the finish's time stays open."""
    eng = Engine(ruleset(RULES))
    feed(eng, job(4200, "JobStarted"))
    eng.tick(7800)
    eng.load(ruleset(RULES.replace("severity: major", "severity: critical")))
    feed(eng, job(4000, "JobFinished"), now=7800)  # older than the run's start
    row = eng.table.get(ALERT)
    assert row is not None and row.status == "open"


def test_a_late_second_delivered_before_its_first_clears_the_alert(
    engine: Callable[[str], Engine],
) -> None:
    """within 1m. Finished at 120 (late) but delivered before the start at 0: the alert is
    raised at 60, as in order, and cleared at once by the remembered finish, named in the note."""
    eng = engine(RULES.replace("within: 1h", "within: 1m"))
    feed(eng, job(120, "JobFinished"))
    feed(eng, job(0, "JobStarted"), now=121)
    changes = eng.tick(122)
    row = eng.table.rows[ALERT]
    assert [c.kind for c in changes if c.alert is row] == ["alert.created", "alert.cleared"]
    assert row.status == "cleared"
    assert "etl-1:JobFinished:nightly: (delivered before its first) came 1m" in row.journal[-1].text


def test_a_redelivered_first_after_a_repeated_second_raises_nothing(
    engine: Callable[[str], Engine],
) -> None:
    """within 1m. Started 0, finished 20 (in time), the finish repeated at 80, the start
    redelivered: the run is complete; the repeat keeps the start of the run it belongs to."""
    eng = engine(RULES.replace("within: 1h", "within: 1m"))
    feed(eng, job(0, "JobStarted"))
    feed(eng, job(20, "JobFinished"))
    feed(eng, job(80, "JobFinished"))
    out = feed(eng, job(0, "JobStarted"), now=81)
    assert created(out + eng.tick(20000)) == []
    assert ALERT not in eng.table.rows
