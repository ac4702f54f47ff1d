"""`kind: flapping`: rows that open and clear too often are labelled and held."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.model import Change
from correlator.testing import feed

RULES = """
correlate:
  - name: link-flap
    kind: flapping
    match: ['alertgroup="LinkDown"']
"""
NAME = "link-flap"
ROW = "sw-1:LinkDown:ge-0/0/1:"


def down(at: float, **kw: Any) -> dict[str, Any]:
    event = {
        "node": "sw-1",
        "alertgroup": "LinkDown",
        "alertkey": "ge-0/0/1",
        "severity": "major",
        "timestamp": at,
    }
    event.update(kw)
    return event


def up(at: float) -> dict[str, Any]:
    return {**down(at), "type": "resolution"}


def flap(eng: Engine, times: list[float]) -> list[Change]:
    """Alternate down/up at the given times, starting with down."""
    out: list[Change] = []
    for i, at in enumerate(times):
        out += feed(eng, down(at) if i % 2 == 0 else up(at))
    return out


def row(eng: Engine) -> Any:
    found = eng.table.get(ROW)
    assert found is not None
    return found


@pytest.fixture
def eng(engine: Callable[[str], Engine]) -> Engine:
    return engine(RULES)


def test_five_transitions_in_an_hour_mark_the_row_flapping(eng: Engine) -> None:
    """Defaults 5 in 1h: the fifth open/clear transition labels and suppresses the row."""
    flap(eng, [0, 60, 120, 180])
    assert "flapping" not in row(eng).labels and row(eng).suppressed_by is None
    changes = feed(eng, down(240))
    assert [c.kind for c in changes] == ["alert.updated", "alert.suppressed", "alert.updated"]
    assert row(eng).labels["flapping"] == "true"
    assert row(eng).suppressed_by == NAME
    texts = [e.text for e in row(eng).journal if e.who == NAME]
    assert texts[0] == "suppressed: 5 open/clear transitions within 1h"
    assert "notifications held until stable for 15m" in texts[1]


def test_window_boundary_is_closed(eng: Engine) -> None:
    """Five transitions spanning exactly the window count (the window is closed)."""
    flap(eng, [0, 900, 1800, 2700, 3600])
    assert row(eng).suppressed_by == NAME


def test_slow_changes_are_not_flapping(eng: Engine) -> None:
    """Five transitions spread over more than the window never reach the count."""
    flap(eng, [0, 901, 1802, 2703, 3604, 4505])
    assert row(eng).suppressed_by is None
    assert "flapping" not in row(eng).labels


def test_release_after_stable_for_and_window(eng: Engine) -> None:
    """Released at max(last + stable_for, oldest counted + window): label off, then unsuppressed."""
    flap(eng, [0, 60, 120, 180, 240])
    assert eng.tick(3599) == []
    changes = eng.tick(3600)
    assert [c.kind for c in changes] == ["alert.updated", "alert.unsuppressed"]
    assert "flapping" not in row(eng).labels and row(eng).suppressed_by is None
    assert row(eng).status == "open"
    assert "no longer flapping: stable for 56m" in row(eng).journal[-2].text


def test_a_second_episode_after_the_release_is_held_again(eng: Engine) -> None:
    """Released at 3600; five more transitions from 4000 label and hold it anew, saying so."""
    flap(eng, [0, 60, 120, 180, 240])
    eng.tick(3600)
    assert row(eng).suppressed_by is None
    feed(eng, up(4000))
    flap(eng, [4060, 4120, 4180])  # reopened, cleared, reopened: four transitions
    assert row(eng).suppressed_by is None and "flapping" not in row(eng).labels
    out = feed(eng, up(4240))  # the fifth within the hour
    assert [c.kind for c in out] == ["alert.cleared", "alert.suppressed", "alert.updated"]
    assert row(eng).labels["flapping"] == "true" and row(eng).suppressed_by == NAME
    texts = [e.text for e in row(eng).journal if e.who == NAME]
    assert texts.count("suppressed: 5 open/clear transitions within 1h") == 2
    assert sum("no longer flapping" in t for t in texts) == 1


def test_transitions_are_timed_when_they_reach_the_table(eng: Engine) -> None:
    """The count follows the engine clock, as check results do in Nagios: transitions
    stamped minutes apart but delivered a second apart count a second apart, and a
    resolution older than the last occurrence changes nothing, so it does not count."""
    feed(eng, down(0), now=300)
    feed(eng, up(100), now=301)
    feed(eng, down(200), now=302)
    feed(eng, up(150), now=303)  # stale: the row reopened at 200; the table ignores it
    assert row(eng).status == "open"
    feed(eng, up(300), now=304)
    assert row(eng).suppressed_by is None
    assert eng.operators[NAME]._rows[ROW].times == [300, 301, 302, 304]  # type: ignore[attr-defined]
    feed(eng, down(305))  # the 5th real transition
    assert row(eng).suppressed_by == NAME
    # released at max(305 + 15m, 300 + 1h): the arrival times decide
    assert eng.tick(3899) == [] and eng.tick(3900)[-1].kind == "alert.unsuppressed"


def test_release_waits_for_stable_for(engine: Callable[[str], Engine]) -> None:
    """When the window empties first, the release still waits until the row is stable."""
    eng = engine(RULES + "    stable_for: 2h\n")
    flap(eng, [0, 60, 120, 180, 240])
    assert eng.tick(240 + 7199) == []
    assert [c.kind for c in eng.tick(240 + 7200)][-1] == "alert.unsuppressed"


def test_more_transitions_push_the_release_back(eng: Engine) -> None:
    """Each transition while flapping moves the release; a stale timer releases nothing."""
    flap(eng, [0, 60, 120, 180, 240, 3000, 3060])
    assert row(eng).status == "open" and row(eng).suppressed_by == NAME
    eng.tick(3600)  # the first release time has passed: the row is still flapping
    assert row(eng).suppressed_by == NAME
    # last five: 180 240 3000 3060 (+ 120 earlier); oldest counted 180 → 3780; stable 3960
    eng.tick(3959)
    assert row(eng).suppressed_by == NAME
    eng.tick(3960)
    assert row(eng).suppressed_by is None


def test_state_survives_deletion_between_flaps(eng: Engine) -> None:
    """Cleared rows are deleted after 120s; a slow flap across deletions is still caught."""
    flap(eng, [0, 60, 600, 660, 1200])  # the row is deleted at 180 and 780, then re-created
    assert row(eng).suppressed_by == NAME
    assert row(eng).labels["flapping"] == "true"


def test_recreated_row_of_a_flapping_alert_is_held_at_once(eng: Engine) -> None:
    """A flapping alert whose row was deleted comes back labelled and suppressed."""
    flap(eng, [0, 60, 120, 180, 240, 300])  # flapping, then cleared at 300
    feed(eng, down(600))  # deleted at 420; a new row
    assert row(eng).suppressed_by == NAME
    assert row(eng).labels["flapping"] == "true"


def test_release_of_a_deleted_row_then_state_is_forgotten(eng: Engine) -> None:
    """A flapping alert that ends cleared and deleted leaves no state once its window passes."""
    flap(eng, [0, 60, 120, 180, 240, 300])
    op = eng.operators[NAME]
    eng.tick(3700)
    assert eng.table.get(ROW) is None and op.size() == 1
    eng.tick(300 + 3600)
    assert op.size() == 0


def test_only_matching_problem_rows_are_counted(eng: Engine) -> None:
    """Rows outside `match`, and info rows, are never counted."""
    for i, at in enumerate([0, 60, 120, 180, 240]):
        kind = "problem" if i % 2 == 0 else "resolution"
        feed(eng, {"node": "sw-1", "alertgroup": "CPU", "type": kind, "timestamp": at})
    for at in range(0, 3000, 60):
        feed(eng, down(at, alertgroup="LinkDown", alertkey="info", type="info", expire_after=30))
    assert eng.operators[NAME].size() == 0


def test_other_suppressor_is_kept(eng: Engine) -> None:
    """Released by flapping while a maintenance rule still holds it: stays suppressed by it."""
    flap(eng, [0, 60, 120, 180, 240])
    eng.suppress(row(eng), 300, "maintenance-window", "planned work")
    eng.tick(3600)
    assert row(eng).suppressed_by == "maintenance-window"
    assert "flapping" not in row(eng).labels


def test_cap_refuses_new_rows(engine: Callable[[str], Engine]) -> None:
    """With max_rows reached, a new row is not tracked and `cap_hit` is counted."""
    eng = engine(RULES + "    max_rows: 1\n")
    feed(eng, down(0))
    feed(eng, down(0, alertkey="ge-0/0/2"))
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 1
    assert eng.operators[NAME].size() == 1


def test_cap_hit_counts_a_refused_row_once_per_episode(engine: Callable[[str], Engine]) -> None:
    """At the cap, a refused row's updates are refused silently; a reopen counts again."""
    eng = engine(RULES + "    max_rows: 1\n")
    feed(eng, down(0))
    feed(eng, down(0, alertkey="ge-0/0/2"))
    for at in range(1, 5):
        feed(eng, down(at, alertkey="ge-0/0/2", summary=f"down ({at})"))  # `updated`
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 1
    feed(eng, {**down(10, alertkey="ge-0/0/2"), "type": "resolution"})
    feed(eng, down(11, alertkey="ge-0/0/2"))
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 2
    assert eng.operators[NAME].size() == 1


def test_changes_must_be_at_least_two(engine: Callable[[str], Engine]) -> None:
    """`changes: 1` would hold every alert: rejected when the rules load."""
    from correlator.errors import RuleSetError

    with pytest.raises(RuleSetError, match="changes"):
        engine(RULES + "    changes: 1\n")


def test_window_must_be_positive(engine: Callable[[str], Engine]) -> None:
    """A zero window could never hold `changes` transitions: rejected when the rules load."""
    from correlator.errors import RuleSetError

    with pytest.raises(RuleSetError, match="window must be longer than 0s"):
        engine(RULES + "    window: 0s\n")


def test_a_row_that_comes_to_match_is_counted_from_then_on(
    engine: Callable[[str], Engine],
) -> None:
    """Labels changed by an update to match: watched from the update, earlier flaps unseen."""
    eng = engine(RULES.replace("['alertgroup=\"LinkDown\"']", "['labels.role=\"uplink\"']"))
    feed(eng, down(0, labels={"role": "access"}))
    feed(eng, down(30, labels={"role": "uplink"}))
    assert eng.operators[NAME].size() == 1
    for event in (up(60), down(120), up(180), down(240)):  # four counted transitions
        feed(eng, event)
    assert row(eng).suppressed_by is None
    feed(eng, up(300))
    assert row(eng).suppressed_by == NAME and row(eng).labels["flapping"] == "true"


def test_a_flapping_row_that_stops_matching_is_released_and_forgotten(
    engine: Callable[[str], Engine],
) -> None:
    """Relabelled out of scope while flapping: label off, unsuppressed, journal says why."""
    eng = engine(RULES.replace("['alertgroup=\"LinkDown\"']", "['labels.role=\"uplink\"']"))
    for i, at in enumerate([0, 60, 120, 180, 240]):
        feed(eng, down(at, labels={"role": "uplink"}) if i % 2 == 0 else up(at))
    assert row(eng).suppressed_by == NAME
    out = feed(eng, down(300, labels={"role": "access"}))
    assert [c.kind for c in out] == ["alert.updated", "alert.updated", "alert.unsuppressed"]
    assert "flapping" not in row(eng).labels and row(eng).suppressed_by is None
    texts = [e.text for e in row(eng).journal if e.who == NAME]
    assert texts[-2:] == [
        "no longer flapping: the row no longer matches the rule",
        "released: the row no longer matches the rule",
    ]
    assert eng.operators[NAME].size() == 0
    assert eng.tick(10_000) == []


def test_a_rule_matching_on_its_own_label_terminates(engine: Callable[[str], Engine]) -> None:
    """Its hold relabels the row out of scope: released and forgotten once, no loop."""
    eng = engine(RULES.replace("['alertgroup=\"LinkDown\"']", "['labels.flapping!=\"true\"']"))
    flap(eng, [0, 60, 120, 180, 240])
    assert row(eng).suppressed_by is None and "flapping" not in row(eng).labels
    assert eng.operators[NAME].size() == 0


def test_a_flapping_row_that_ends_cleared_is_deleted_and_forgotten(
    engine: Callable[[str], Engine],
) -> None:
    """Released while cleared (the note restarts the grace): deleted later, state dropped."""
    eng = engine(RULES + "    changes: 3\n    window: 2m\n    stable_for: 30s\n")
    flap(eng, [0, 10, 20, 30])  # flapping at 20, cleared at 30
    assert [c.kind for c in eng.tick(130)] == ["alert.updated", "alert.unsuppressed"]
    assert eng.table.get(ROW) is not None
    assert [c.kind for c in eng.tick(250)] == ["alert.deleted"]
    assert eng.operators[NAME].size() == 0
    assert eng.tick(100_000) == [] and eng.next_timer() is None


def test_with_defaults_a_flap_that_ends_cleared_is_deleted_held(eng: Engine) -> None:
    """stable_for 15m outlasts the 120 s deletion grace: the row goes, still held, and the
    state follows once its last transition is an hour old."""
    flap(eng, [0, 60, 120, 180, 240, 300])  # ends with a clear at 300
    assert (row(eng).status, row(eng).suppressed_by) == ("cleared", NAME)
    assert [c.kind for c in eng.tick(420)] == ["alert.deleted"]
    assert eng.operators[NAME].size() == 1
    eng.tick(300 + 3600)
    assert eng.operators[NAME].size() == 0
