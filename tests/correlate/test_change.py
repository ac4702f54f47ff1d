"""`kind: change`: alerts born inside a change's window get `suspect_change`."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from correlator.correlate.change import MAX_BORN_PER_KEY, MAX_PER_KEY, ChangeOperator, ChangeRule
from correlator.engine import Engine
from correlator.errors import RuleSetError
from correlator.model import Alert
from correlator.ruleset.loader import RuleSet
from correlator.testing import feed

RULES = """
correlate:
  - name: deploy-suspect
    kind: change
    change: ['alertgroup="Deploy"']
    match: ['severity>=3']
    on: [labels.service]
    within: 30m
"""
NAME = "deploy-suspect"
GRACE = 300.0  # the engine's default max_lateness


def deploy(at: float, version: str = "v42", service: str = "checkout") -> dict[str, Any]:
    return {
        "node": "ci",
        "alertgroup": "Deploy",
        "alertkey": f"{service}-{version}",
        "type": "info",
        "severity": "indeterminate",
        "summary": f"deploy {service} {version}",
        "labels": {"service": service},
        "expire_after": "1h",
        "timestamp": at,
    }


def down(at: float, node: str = "web-1", service: str = "checkout", **kw: Any) -> dict[str, Any]:
    event = {
        "node": node,
        "alertgroup": "HTTPDown",
        "severity": "major",
        "labels": {"service": service},
        "timestamp": at,
    }
    event.update(kw)
    return event


def up(at: float, node: str = "web-1") -> dict[str, Any]:
    return {"node": node, "alertgroup": "HTTPDown", "type": "resolution", "timestamp": at}


def suspect(eng: Engine, identifier: str = "web-1:HTTPDown::") -> str | None:
    row = eng.table.get(identifier)
    assert row is not None
    return row.annotations.get("suspect_change")


@pytest.fixture
def eng(engine: Callable[[str], Engine]) -> Engine:
    return engine(RULES)


def test_alert_inside_the_window_names_the_change(eng: Engine) -> None:
    """An alert created 4m after a deploy of its service points at that deploy, with a note."""
    feed(eng, deploy(0))
    changes = feed(eng, down(240))
    assert [c.kind for c in changes] == ["alert.created", "alert.updated"]
    assert suspect(eng) == "ci:Deploy:checkout-v42:"
    row = eng.table.get("web-1:HTTPDown::")
    assert row is not None
    note = row.journal[-1]
    assert note.who == NAME
    assert "ci:Deploy:checkout-v42: (deploy checkout v42): 4m before" in note.text
    assert "30m window on labels.service=checkout" in note.text


def test_window_is_closed_at_its_end(eng: Engine) -> None:
    """At exactly change+within the alert is still a suspect; one second later it is not."""
    feed(eng, deploy(0))
    feed(eng, down(1800))
    feed(eng, down(1801, node="web-2"))
    assert suspect(eng) == "ci:Deploy:checkout-v42:"
    assert suspect(eng, "web-2:HTTPDown::") is None
    eng.tick(1800 + GRACE)
    assert eng.operators[NAME].size() == 1  # the change is kept GRACE past its window's end
    eng.tick(1801 + GRACE)
    assert eng.operators[NAME].size() == 0  # and the alerts are done waiting for a late one


def test_an_alert_stamped_inside_the_window_but_delivered_after_it_names_the_change(
    eng: Engine,
) -> None:
    """Window [0, 1800]; time has moved to 1900 when an alert stamped 1700 arrives."""
    feed(eng, deploy(0))
    feed(eng, down(1900, node="web-9"))
    feed(eng, down(1700), now=1900)
    assert suspect(eng) == "ci:Deploy:checkout-v42:"
    assert suspect(eng, "web-9:HTTPDown::") is None


def test_alert_older_than_the_change_is_not_a_suspect(eng: Engine) -> None:
    """An alert that started before the change (delivered after it) cannot be caused by it."""
    feed(eng, deploy(100))
    feed(eng, down(90), now=100)
    assert suspect(eng) is None


def test_other_services_and_non_matching_alerts_are_untouched(eng: Engine) -> None:
    """Only alerts with the same `on` values that match `match` are annotated."""
    feed(eng, deploy(0))
    feed(eng, down(10, service="search"))
    feed(eng, down(10, node="web-3", severity="warning"))
    feed(eng, down(10, node="web-4", type="info"))
    feed(eng, deploy(20, version="v43"))  # a change row is never its own suspect
    assert suspect(eng) is None
    assert suspect(eng, "web-3:HTTPDown::") is None
    assert suspect(eng, "web-4:HTTPDown::") is None
    assert suspect(eng, "ci:Deploy:checkout-v43:") is None


def test_overlapping_changes_pick_the_most_recent(eng: Engine) -> None:
    """Two deploys in the window: the later one is the suspect for alerts after it."""
    feed(eng, deploy(0, "v42"))
    feed(eng, deploy(600, "v43"))
    feed(eng, down(700))
    assert suspect(eng) == "ci:Deploy:checkout-v43:"


def test_alert_between_two_changes_picks_the_one_before_it(eng: Engine) -> None:
    """A late alert stamped between two deploys points at the earlier one, not the future one."""
    feed(eng, deploy(0, "v42"))
    feed(eng, deploy(600, "v43"))
    feed(eng, down(300), now=600)
    assert suspect(eng) == "ci:Deploy:checkout-v42:"


def test_late_older_change_does_not_override_a_newer_one(eng: Engine) -> None:
    """Out of order changes are kept sorted by time: the newest still wins for new alerts."""
    feed(eng, deploy(600, "v43"))
    feed(eng, deploy(500, "v42"), now=600)
    feed(eng, down(700))
    assert suspect(eng) == "ci:Deploy:checkout-v43:"


def test_reopened_alert_gets_the_change_of_its_new_window(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """A reopen inside a later change window points at that change; outside, the old one stays."""
    eng = Engine(ruleset(RULES), delete_cleared_after=86_400)
    feed(eng, deploy(0, "v42"))
    feed(eng, down(60))
    feed(eng, up(120))
    feed(eng, deploy(3600, "v43"))
    feed(eng, down(3660))
    assert suspect(eng) == "ci:Deploy:checkout-v43:"
    feed(eng, up(3700))
    feed(eng, down(9000))  # no window open: left as it was
    assert suspect(eng) == "ci:Deploy:checkout-v43:"
    row = eng.table.get("web-1:HTTPDown::")
    assert row is not None and row.tally == 3
    assert sum(e.who == NAME for e in row.journal) == 2


def test_repeated_change_moves_its_window(eng: Engine) -> None:
    """The same change identifier again (a re-run deploy) restarts its window at the new time."""
    feed(eng, deploy(0))
    feed(eng, deploy(1500))
    feed(eng, down(3000))
    assert suspect(eng) == "ci:Deploy:checkout-v42:"


def test_change_without_on_values_is_ignored(eng: Engine) -> None:
    """A change that names no service says nothing about any alert (counted)."""
    feed(eng, {**deploy(0), "labels": {}})
    feed(eng, down(10, service=""))
    assert suspect(eng) is None
    assert eng.stats.rule_events[(NAME, "change_without_key")] == 1


def test_cap_refuses_new_keys(engine: Callable[[str], Engine]) -> None:
    """With max_keys reached, a change for new `on` values is refused and counted."""
    eng = engine(RULES + "    max_keys: 1\n")
    feed(eng, deploy(0, service="checkout"))
    feed(eng, deploy(0, service="search"))
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 1
    feed(eng, down(10, node="web-9", service="search"))
    assert suspect(eng, "web-9:HTTPDown::") is None


def test_recent_changes_per_key_are_bounded(eng: Engine) -> None:
    """A config push storm keeps only the most recent changes per `on` values."""
    for i in range(MAX_PER_KEY + 5):
        feed(eng, deploy(i, version=f"v{i}"))
    windows = eng.operators[NAME]._windows  # type: ignore[attr-defined]
    assert len(windows[("checkout",)]) == MAX_PER_KEY
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 5  # one per forgotten change
    feed(eng, down(100))
    assert suspect(eng) == f"ci:Deploy:checkout-v{MAX_PER_KEY + 4}:"


def test_within_must_be_positive(ruleset: Callable[[str], RuleSet]) -> None:
    """A zero window is a rule error."""
    with pytest.raises(RuleSetError, match="within must be longer than 0s"):
        ruleset(RULES.replace("within: 30m", "within: 0s"))


def test_late_duplicate_of_a_change_keeps_its_window(eng: Engine) -> None:
    """The same change delivered again with an older time does not move its window back."""
    feed(eng, deploy(1000))
    feed(eng, deploy(800), now=1000)
    feed(eng, down(2700))  # inside 1000 + 30m, outside 800 + 30m
    assert suspect(eng) == "ci:Deploy:checkout-v42:"


def test_change_delivered_after_the_alert_still_names_it(eng: Engine) -> None:
    """Arrival order does not matter: a deploy stamped before an alert but delivered after it."""
    feed(eng, down(160), now=170)
    changes = feed(eng, deploy(100), now=170)
    assert suspect(eng) == "ci:Deploy:checkout-v42:"
    assert [c.kind for c in changes if c.alert and c.alert.identifier == "web-1:HTTPDown::"] == [
        "alert.updated"
    ]
    row = eng.table.get("web-1:HTTPDown::")
    assert row is not None
    assert "ci:Deploy:checkout-v42: (deploy checkout v42): 1m before" in row.journal[-1].text


def test_late_change_only_covers_alerts_inside_its_window(
    engine: Callable[[str], Engine],
) -> None:
    """A late change annotates buffered alerts in [change, change + within] with its `on` values."""
    eng = engine(RULES.replace("within: 30m", "within: 2m"))
    feed(eng, down(50, node="web-0"))
    feed(eng, down(160, node="web-1"))
    feed(eng, down(160, node="web-2", service="search"))
    feed(eng, down(250, node="web-3"))  # the change's window ends at 220
    feed(eng, deploy(100), now=250)
    assert suspect(eng, "web-1:HTTPDown::") == "ci:Deploy:checkout-v42:"
    assert suspect(eng, "web-0:HTTPDown::") is None  # before the change
    assert suspect(eng, "web-2:HTTPDown::") is None  # another service
    assert suspect(eng, "web-3:HTTPDown::") is None  # after its window


def test_late_change_that_is_more_recent_replaces_the_suspect(eng: Engine) -> None:
    """Most recent change before the alert wins, even when it arrives after the alert."""
    feed(eng, deploy(0, "v42"))
    feed(eng, down(200))
    assert suspect(eng) == "ci:Deploy:checkout-v42:"
    feed(eng, deploy(150, "v43"), now=200)
    assert suspect(eng) == "ci:Deploy:checkout-v43:"
    feed(eng, deploy(100, "v41"), now=200)  # older than the suspect: changes nothing
    assert suspect(eng) == "ci:Deploy:checkout-v43:"


def test_alert_waits_for_a_late_change_only_for_the_grace(eng: Engine) -> None:
    """An alert is kept GRACE after its time; a change arriving later leaves it alone."""
    feed(eng, down(0))
    eng.tick(GRACE)
    assert eng.operators[NAME].size() == 0
    feed(eng, deploy(0), now=GRACE)
    assert suspect(eng) is None


def test_grace_for_a_late_change_is_the_engines_max_lateness(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """An engine accepting events 1m late keeps alerts waiting 1m, not the default 5m."""
    eng = Engine(ruleset(RULES), max_lateness=60)
    feed(eng, down(0))
    eng.tick(59)
    assert eng.operators[NAME].size() == 1
    eng.tick(60)
    assert eng.operators[NAME].size() == 0


def test_cleared_alert_is_not_annotated_by_a_late_change(eng: Engine) -> None:
    """An alert whose episode ended before the change arrived keeps its history untouched."""
    feed(eng, down(100))
    feed(eng, up(120))
    feed(eng, deploy(50), now=130)
    assert suspect(eng) is None


def test_alerts_waiting_per_key_are_bounded(eng: Engine) -> None:
    """An alert storm before a late deploy keeps only the most recent alerts per `on` values."""
    for i in range(MAX_BORN_PER_KEY + 3):
        feed(eng, down(10, node=f"web-{i}"))
    assert eng.stats.rule_events[(NAME, "cap_hit")] == 3
    feed(eng, deploy(0), now=10)
    assert suspect(eng, "web-0:HTTPDown::") is None
    assert suspect(eng, f"web-{MAX_BORN_PER_KEY + 2}:HTTPDown::") == "ci:Deploy:checkout-v42:"


class _Timers:
    """The part of the engine's context `_remember_born` and `on_timer` use."""

    def __init__(self) -> None:
        self.due: list[tuple[float, Any]] = []

    def schedule(self, when: float, _op: object, key: Any) -> None:
        self.due.append((when, key))

    def count(self, _what: str, _name: str) -> None:
        pass


class _Reference:
    """The alerts waiting for a late change, kept as before the heap: a scan per firing."""

    def __init__(self) -> None:
        self.born: dict[str, float] = {}
        self.timers = _Timers()

    def remember(self, ident: str, at: float) -> None:
        if not self.born:
            self.timers.schedule(at + GRACE, None, "born")
        self.born.pop(ident, None)
        self.born[ident] = at
        if len(self.born) > MAX_BORN_PER_KEY:
            del self.born[next(iter(self.born))]

    def fire(self, now: float) -> None:
        for ident in [i for i, at in self.born.items() if at + GRACE <= now]:
            del self.born[ident]
        if self.born:
            self.timers.schedule(min(self.born.values()) + GRACE, None, "born")


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alerts", [400, 20])  # past the cap; about the heap's threshold
def test_alerts_done_waiting_go_at_the_same_times_as_a_full_scan(seed: int, alerts: int) -> None:
    """Late, reopened and evicted alerts, and a restore (the heap rebuilt from the state):
    what waits, in what order, and when the timer fires match a scan of every alert."""
    rng = random.Random(seed)
    rule = {"name": NAME, "kind": "change", "change": ['alertgroup="Deploy"'],
            "on": ["labels.service"], "within": "30m"}  # fmt: skip
    spec = ChangeRule.model_validate(rule)
    op, ref, timers = ChangeOperator(spec, GRACE), _Reference(), _Timers()
    key = ("checkout",)
    now = 0.0
    for step in range(4_000):
        if rng.random() < 0.7:
            ident = f"web-{rng.randrange(alerts)}"
            at = now - rng.choice((0.0, 0.0, rng.uniform(0, 60)))
            op._remember_born(key, Alert(ident, ident, "HTTPDown"), at, timers)  # type: ignore[arg-type]
            ref.remember(ident, at)
        else:
            now += rng.uniform(0, 40)
            for due in (timers, ref.timers):
                due.due.sort(key=lambda d: d[0])
            while timers.due and timers.due[0][0] <= now:
                when, timer = timers.due.pop(0)
                op.on_timer(timer, when, timers)  # type: ignore[arg-type]
                ref.fire(ref.timers.due.pop(0)[0])
                for due in (timers, ref.timers):
                    due.due.sort(key=lambda d: d[0])
        if step == 2_000:  # restored: the state alone, the heap to be rebuilt
            fresh = ChangeOperator(spec, GRACE)
            fresh._born = {k: dict(v) for k, v in op._born.items()}
            op = fresh
        waiting = [(i, e.at) for i, e in op._born.get(key, {}).items()]
        assert waiting == list(ref.born.items())
        assert [when for when, _ in timers.due] == [when for when, _ in ref.timers.due]
