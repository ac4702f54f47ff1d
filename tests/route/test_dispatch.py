"""Notifications through the routing tree, on a virtual clock: Alertmanager's timing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from test_snapshot import canonical

from correlator.engine import Engine
from correlator.model import Change
from correlator.ruleset.loader import RuleSet

RULES = """
route:
  receiver: noc
  group_by: [site]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['team="db"']
      receiver: db-chat
      group_by: ['...']
    - matchers: ['team="night"']
      receiver: noc
      mute_time_intervals: [nights]
receivers:
  - {name: noc, webhook_configs: [{url: "http://noc.example/hook"}]}
  - {name: pager, pagerduty_configs: [{routing_key: x}]}
  - {name: db-chat, slack_configs: [{channel: "#db"}]}
time_intervals:
  - name: nights
    time_intervals: [{times: [{start_time: "22:00", end_time: "24:00"}]}]
inhibit_rules:
  - source_matchers: ['alertname="SiteDown"']
    target_matchers: ['alertname="HostDown"']
    equal: [site]
"""

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Run:
    """An engine fed events and ticks at offsets from T0; notifications collected."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sent: list[tuple[float, str, list[str]]] = []

    def _keep(self, changes: list[Change]) -> None:
        for change in changes:
            if change.kind == "notification":
                ids = [a["identifier"] + ("" if a["status"] != "cleared" else " resolved")
                       for a in change.sent_alerts()]  # fmt: skip
                self.sent.append((change.at - T0, str(change.receiver), ids))

    def event(self, at: float, **event: Any) -> None:
        event.setdefault("alertgroup", "HostDown")
        self._keep(self.engine.run_timers_before(T0 + at))
        self._keep(self.engine.process({"timestamp": T0 + at, **event}, T0 + at))

    def until(self, at: float) -> list[tuple[float, str, list[str]]]:
        self._keep(self.engine.tick(T0 + at))
        return self.sent


@pytest.fixture
def run(ruleset: Callable[[str], RuleSet]) -> Run:
    engine = Engine(ruleset(RULES), snapshots=True)
    engine.tick(T0)
    return Run(engine)


def test_a_group_waits_then_sends_its_alerts_together(run: Run) -> None:
    run.event(0, node="h1", labels={"site": "ams"})
    run.event(10, node="h2", labels={"site": "ams"})
    run.event(20, node="h3", labels={"site": "fra"})
    assert run.until(29) == []
    assert run.until(30) == [(30, "noc", ["h1:HostDown::", "h2:HostDown::"])]
    assert run.until(50) == [(30, "noc", ["h1:HostDown::", "h2:HostDown::"]),
                             (50, "noc", ["h3:HostDown::"])]  # fmt: skip


def test_a_new_alert_waits_for_the_group_interval_and_repeats_wait_an_hour(run: Run) -> None:
    run.event(0, node="h1", labels={"site": "ams"})
    run.event(60, node="h2", labels={"site": "ams"})
    assert [at for at, *_ in run.until(329)] == [30]
    assert run.until(330)[-1] == (330, "noc", ["h1:HostDown::", "h2:HostDown::"])
    # nothing new: the next sends come when repeat_interval (1h) has passed, on an interval tick
    assert [at for at, *_ in run.until(330 + 3600)] == [30, 330, 330 + 3600]


def test_resolved_alerts_are_sent_to_receivers_that_want_them(run: Run) -> None:
    run.event(0, node="h1", labels={"site": "ams"})
    run.event(0, node="d1", labels={"site": "ams", "team": "db"})
    run.until(30)
    run.event(100, node="h1", labels={"site": "ams"}, type="resolution")
    run.event(100, node="d1", labels={"site": "ams", "team": "db"}, type="resolution")
    sent = run.until(330)
    assert (330, "noc", ["h1:HostDown:: resolved"]) in sent  # webhook: send_resolved
    assert [s for s in sent if s[1] == "db-chat"] == [(30, "db-chat", ["d1:HostDown::"])]
    assert run.engine.operators["route"].size() == 0  # every group emptied and dropped
    assert run.until(4000) == sent  # and nothing after


def test_continue_goes_on_to_later_routes_and_inhibited_alerts_are_left_out(run: Run) -> None:
    run.event(0, node="h1", severity="critical", labels={"site": "ams", "team": "db"})
    run.event(0, node="h3", severity="critical", labels={"site": "ams"})  # pager only
    run.event(0, node="sw", alertgroup="SiteDown", labels={"site": "fra"})
    run.event(0, node="h2", severity="critical", labels={"site": "fra"})  # inhibited
    assert sorted(run.until(30)) == [
        (30, "db-chat", ["h1:HostDown::"]),
        (30, "noc", ["sw:SiteDown::"]),
        (30, "pager", ["h1:HostDown::", "h3:HostDown::"]),
    ]


def test_a_muted_route_sends_nothing_in_its_interval(run: Run) -> None:
    run.event(22 * 3600, node="n1", labels={"site": "ams", "team": "night"})
    assert run.until(24 * 3600 - 1) == []
    assert run.until(24 * 3600 + 300)[0][1:] == ("noc", ["n1:HostDown::"])


def test_groups_survive_a_snapshot(run: Run, ruleset: Callable[[str], RuleSet]) -> None:
    run.event(0, node="h1", labels={"site": "ams"})
    run.until(30)
    restored = Engine(ruleset(RULES), snapshots=True)
    restored.restore(orjson.loads(orjson.dumps(run.engine.snapshot())))
    assert canonical(restored.snapshot()) == canonical(run.engine.snapshot())
    again = Run(restored)
    run.event(60, node="h2", labels={"site": "ams"})
    again.event(60, node="h2", labels={"site": "ams"})
    assert again.until(330) == run.until(330)[1:]  # only what came after the snapshot


def test_editing_the_tree_keeps_what_its_groups_sent(ruleset: Callable[[str], RuleSet]) -> None:
    """A changed route keeps its groups (same route id): no second notification for the
    same alerts; a group of a route the edit removed is gone."""
    engine = Engine(ruleset(RULES), snapshots=True)
    engine.tick(T0)
    run = Run(engine)
    run.event(0, node="h1", labels={"site": "ams"})
    assert run.until(30) == [(30, "noc", ["h1:HostDown::"])]
    engine.load(ruleset(RULES.replace("group_interval: 5m", "group_interval: 2m")))
    assert run.until(3000) == [(30, "noc", ["h1:HostDown::"])]  # nothing new: nothing sent
    # the edit took effect at 3000 (the next entry), so the group flushes every 2m from then
    run.event(3001, node="h2", labels={"site": "ams"})
    assert run.until(3119)[-1][0] == 30
    assert run.until(3120)[-1] == (3120, "noc", ["h1:HostDown::", "h2:HostDown::"])
