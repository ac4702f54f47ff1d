"""Counters the engine keeps; the metrics module exports them, tests read them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class Stats:
    """Plain integers on the hot path; labelled counts in Counters."""

    events: int = 0
    dedup_hits: int = 0
    late_occurrences: int = 0
    resolutions_unmatched: int = 0
    resolutions_late: int = 0
    # problems stamped at or before a remembered resolution: counted in the cleared row,
    # created cleared, or dropped with the deleted row they belonged to
    occurrences_before_resolution: int = 0
    resolutions_cap_hit: int = 0  # resolutions not remembered: the table's memory was full
    template_limited: int = 0  # renders cut at 64 KiB or stopped by a bound (loops, sizes)
    discarded: Counter[str] = field(default_factory=Counter)  # by normalize rule
    dead_lettered: Counter[str] = field(default_factory=Counter)  # by reason
    rule_events: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, what)
