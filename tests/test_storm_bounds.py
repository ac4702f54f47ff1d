"""State stays bounded under a storm of distinct keys: the storm benchmark, small.

`bench/storm.py` loads one rule of every stateful kind with a cap and feeds
events that each carry a key of their own. Here: 6,000 events against a cap of
50, so every cap bites many times over, and each rule's state must stay at its
cap with the refusals counted. (The benchmark itself runs a million events.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))

import storm  # the benchmark's rules and events

from correlator.engine import Engine

CAP = 50
# incident counts its live incidents plus its groups, change its windows plus the
# alerts waiting for a late change: each of the two is capped separately
DOUBLE = {"storm-incident", "storm-change"}


def test_every_rule_stays_at_its_cap_and_counts_refusals() -> None:
    engine = Engine(storm.load(CAP, expire=10))
    for batch in storm.batches(6_000, 100, rate=100.0, expire=10):
        for event in batch:
            engine.process(event, event["timestamp"])
        engine.tick(batch[-1]["timestamp"])
    capped = {name: op for name, op in engine.operators.items() if name != "storm-clear"}
    assert len(capped) == 10  # one rule of every stateful kind
    for name, op in capped.items():
        bound = 2 * CAP if name in DOUBLE else CAP
        assert 0 < op.size() <= bound, (name, op.size())
        assert engine.stats.rule_events[(name, "cap_hit")] > 0, name
