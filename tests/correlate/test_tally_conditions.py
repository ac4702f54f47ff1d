"""`tally` in a condition reads the row's tally in every kind, event-based ones too.

Threshold, pair, absence and change test their matchers (and CEL `when:`) on
each event; the event must carry the tally of the row it folded into, not the
1 of a single occurrence, or `tally>3` could never match there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.ruleset.loader import RuleSet


def event(group: str, at: float, node: str = "h1", **extra: Any) -> dict[str, Any]:
    return {"node": node, "alertgroup": group, "severity": "major", "timestamp": at, **extra}


def feed(eng: Engine, group: str, times: list[float], **extra: Any) -> None:
    for at in times:
        eng.run_timers_before(at)
        eng.process(event(group, at, **extra), at)


THRESHOLD = """
correlate:
  - name: noisy
    kind: threshold
    match: ['alertgroup="Flap"', {condition}]
    count: 1
    window: 10m
"""


@pytest.mark.parametrize("condition", ["'tally>3'", "'tally>=4'"])
def test_threshold_counts_rows_by_their_tally(
    ruleset: Callable[[str], RuleSet], condition: str
) -> None:
    """`tally>3`: the fourth occurrence of one row is the first that counts."""
    eng = Engine(ruleset(THRESHOLD.format(condition=condition)))
    feed(eng, "Flap", [0, 10, 20])
    assert eng.table.get("correlator:noisy") is None
    feed(eng, "Flap", [30])
    row = eng.table.get("correlator:noisy")
    assert row is not None and row.status == "open"


def test_threshold_when_reads_the_row_tally(ruleset: Callable[[str], RuleSet]) -> None:
    """CEL `when: "tally > 3"` sees the row's tally too."""
    rules = THRESHOLD.format(condition="'node=\"h1\"'") + '    when: "tally > 3"\n'
    eng = Engine(ruleset(rules))
    feed(eng, "Flap", [0, 10, 20])
    assert eng.table.get("correlator:noisy") is None
    feed(eng, "Flap", [30])
    assert eng.table.get("correlator:noisy") is not None


def test_pair_first_reads_the_row_tally(ruleset: Callable[[str], RuleSet]) -> None:
    """first: tally>=2 — a job whose start is repeated opens the pair; one start does not."""
    eng = Engine(
        ruleset("""
        correlate:
          - name: slow-job
            kind: pair
            first: ['alertgroup="JobStart"', 'tally>=2']
            second: ['alertgroup="JobEnd"']
            on: [node]
            within: 1m
        """)
    )
    feed(eng, "JobStart", [0], type="info")
    feed(eng, "JobStart", [0], type="info", node="h2")
    feed(eng, "JobStart", [10], type="info")
    eng.tick(200)
    assert eng.table.get("correlator:slow-job:h1") is not None
    assert eng.table.get("correlator:slow-job:h2") is None


def test_absence_watches_rows_by_their_tally(ruleset: Callable[[str], RuleSet]) -> None:
    """match: tally>=2 — a source is watched from its second report, then its silence raises."""
    eng = Engine(
        ruleset("""
        correlate:
          - name: lost
            kind: absence
            match: ['alertgroup="Heartbeat"', 'tally>=2']
            group_by: [node]
            for: 1m
        """)
    )
    feed(eng, "Heartbeat", [0], type="info", node="h2")
    feed(eng, "Heartbeat", [0, 10], type="info")
    eng.tick(200)
    assert eng.table.get("correlator:lost:h1") is not None
    assert eng.table.get("correlator:lost:h2") is None


def test_change_events_are_matched_with_the_row_tally(ruleset: Callable[[str], RuleSet]) -> None:
    """change: tally>=2 — only a change pushed twice opens a window that names suspects."""
    eng = Engine(
        ruleset("""
        correlate:
          - name: suspect
            kind: change
            change: ['alertgroup="ConfigPush"', 'tally>=2']
            match: ['alertgroup="Errors"']
            on: [node]
            within: 10m
        """)
    )
    feed(eng, "ConfigPush", [0, 10], type="info")
    feed(eng, "ConfigPush", [0], type="info", node="h2")
    feed(eng, "Errors", [20])
    feed(eng, "Errors", [20], node="h2")
    h1, h2 = eng.table.get("h1:Errors::"), eng.table.get("h2:Errors::")
    assert h1 is not None and h1.annotations.get("suspect_change") == "h1:ConfigPush::"
    assert h2 is not None and "suspect_change" not in h2.annotations


def test_a_resolution_reads_the_tally_of_the_row_it_clears(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """A resolution sees the tally of the problem it clears; one with no row sees its own 1."""
    eng = Engine(
        ruleset("""
        correlate:
          - name: noisy-recoveries
            kind: threshold
            match: ['type="resolution"', 'tally>=3']
            count: 1
            window: 10m
        """)
    )
    feed(eng, "Down", [0, 10])
    feed(eng, "Down", [20], type="resolution")
    assert eng.table.get("correlator:noisy-recoveries") is None
    feed(eng, "Down", [30, 40, 50], node="h2")
    feed(eng, "Down", [60], type="resolution", node="h2")
    assert eng.table.get("correlator:noisy-recoveries") is not None
