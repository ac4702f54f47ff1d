"""Storm benchmark: state stays bounded under 1,000,000 distinct keys.

What it proves (DESIGN.md requirement): "State is bounded: windows and groups
are evicted when they expire; a storm of 1,000,000 distinct keys must not grow
memory without bound (a cap per rule, counted in metrics when hit)."

How: one rule of every stateful kind (threshold, pair, absence, incident,
topology, flapping, change, inhibit, escalate, maintenance, plus a generic
clear, which has no cap of its own) is loaded from YAML with a deliberately
small cap (`--cap`, default 10,000; the option is `max_groups`, `max_pairs`,
`max_keys`, `max_rows`, `max_alerts` or `max_incidents` depending on the kind).
Then `--events` events (default 1,000,000), each with a key of its own, are
fed to `Engine.process` at `--rate` events per second of event time, with
`Engine.tick` once per second of event time. The mix (per 100 events): 60
LinkDown on edge nodes, 1 LinkDown on core nodes (topology roots), 10
heartbeats, 7 job starts and 5 job ends (never the same key: open pairs and
orphans), 10 deploys (change windows) and 7 SiteDown (inhibit sources).

The alert table keeps one row per identifier until the row expires, so every
event carries `expire_after` (`--expire-after`, default 60s) and every
synthetic alert a rule raises gets the same `expire_after`: an expired row is
cleared, and deleted `delete_cleared_after` (engine default 120s) later. The
table is therefore bounded by rate x (expire_after + delete_cleared_after),
about 180,000 rows at the defaults, whatever the number of distinct keys; the
operators' state is bounded by their caps. Without `expire_after` the table
would keep all 1,000,000 rows: that is by design (DESIGN.md §3), not a leak.

How to read it: one line per checkpoint with the current RSS (from
/proc/self/statm), the peak RSS (getrusage maxrss), the table rows, the timer
heap and the summed operator state. Memory must plateau once the table and the
caps are full (after roughly expire_after + delete_cleared_after of event time,
i.e. ~180,000 events at the defaults): the RSS at 250k, 500k and 1M should be
about the same. Then the per-rule `size()` (each at most the cap) and the
`cap_hit` counters (non-zero: the caps did bite). The last line is one JSON
object: events_per_second, peak_rss_mb, rss_mb_at, operator_sizes, cap_hits,
rule_events, table_rows, timers and the settings used.

Memory mode, `--open N`: N events of the same mix, none expiring, every cap
above N, so every rule holds all it would: the RSS per open alert with every
kind resident (issue 14: 1M open alerts under 1.5 GB).

`--trace` (with `--open`) also runs tracemalloc over the storm and prints the
bytes still held at the end per allocating module, divided by the rows: which
kinds' records the memory is in.

`--daemon-heap` collects garbage as `correlator run` and `correlator replay`
do (`correlator.heap.tune`: young collections per 100,000 new objects
instead of 700). The storm's table is
large and churns, so full collections cost about as much as the engine.

Run: `.venv/bin/python bench/storm.py [--events N] [--cap N] [--rate N] [--open N]
[--trace] [--daemon-heap]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from correlator import heap
from correlator.engine import Engine
from correlator.errors import EventError
from correlator.ruleset.loader import RuleSet, load_rules

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SITES = ("ams1", "fra1", "lon1", "par1", "nyc1")
EDGES = 20  # topology: edge-0..edge-19 depend on core-0 / core-1
PAGE = os.sysconf("SC_PAGE_SIZE")


def rules_yaml(cap: int, expire: int | None) -> str:
    """One rule of every stateful kind, each with the cap `cap` (no expiry: `expire` None)."""
    alert = "{}" if expire is None else f"{{expire_after: {expire}s}}"
    graph = "".join(f"  edge-{n}: {{depends_on: [core-{n % 2}]}}\n" for n in range(EDGES))
    return f"""
topology:
{graph}
correlate:
  - name: storm-threshold
    kind: threshold
    match: ['alertgroup="LinkDown"']
    group_by: [labels.key]
    count: 2
    window: 1m
    max_groups: {cap}
    alert: {alert}
  - name: storm-pair
    kind: pair
    first: ['alertgroup="JobStarted"']
    second: ['alertgroup="JobFinished"']
    on: [labels.key]
    within: 2m
    max_pairs: {cap}
    alert: {alert}
  - name: storm-absence
    kind: absence
    match: ['alertgroup="Heartbeat"']
    group_by: [labels.key]
    for: 2m
    max_groups: {cap}
    alert: {alert}
  - name: storm-incident
    kind: incident
    match: ['alertgroup="LinkDown"']
    group_by: [labels.key]
    window: 1m
    max_incidents: {cap}
  - name: storm-topology
    kind: topology
    match: ['alertgroup="LinkDown"']
    max_alerts: {cap}
  - name: storm-flapping
    kind: flapping
    match: ['alertgroup="LinkDown"']
    changes: 3
    window: 10m
    stable_for: 5m
    max_rows: {cap}
  - name: storm-change
    kind: change
    change: ['alertgroup="Deploy"']
    match: ['alertgroup="LinkDown"']
    on: [labels.key]
    within: 10m
    max_keys: {cap}
  - name: storm-inhibit
    kind: inhibit
    source_matchers: ['alertgroup="SiteDown"']
    target_matchers: ['alertgroup="LinkDown"']
    equal: [site]
    max_alerts: {cap}
  - name: storm-escalate
    kind: escalate
    match: ['severity>=major']
    after: 30s
    set: {{labels.priority: P1}}
    receiver: oncall
    max_alerts: {cap}
  - name: storm-maintenance
    kind: maintenance
    match: ['node=~"edge-1.*"']
    schedule: {{cron: "*/5 * * * *", duration: 1m}}
    max_alerts: {cap}
  - name: storm-clear
    kind: clear
    problem: ['alertgroup="LinkDown"']
    resolution: ['alertgroup="LinkUp"']
    on: [node, alertkey]
"""


def load(cap: int, expire: int | None) -> RuleSet:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "storm.yaml").write_text(rules_yaml(cap, expire))
        return load_rules(tmp)


def event(i: int, rate: float, expire: int | None) -> dict[str, Any]:
    """Event number `i`: its own key `k<i>`, at START + i / rate."""
    key = f"k{i:07d}"
    base: dict[str, Any] = {"timestamp": START + i / rate, "alertkey": key}
    if expire is not None:
        base["expire_after"] = f"{expire}s"
    slot = i % 100
    if slot <= 60:
        node = f"edge-{i % EDGES}" if slot < 60 else f"core-{i % 2}"
        base.update(node=node, alertgroup="LinkDown", severity="major",
                    labels={"key": key, "site": SITES[i % 5]})  # fmt: skip
    elif slot <= 70:
        base.update(node=f"db-{key}", alertgroup="Heartbeat", type="info", labels={"key": key})
    elif slot <= 77:
        base.update(node="batch", alertgroup="JobStarted", type="info", labels={"key": key})
    elif slot <= 82:
        base.update(node="batch", alertgroup="JobFinished", type="info", labels={"key": key})
    elif slot <= 92:
        base.update(node="cd", alertgroup="Deploy", type="info", labels={"key": key})
    else:
        base.update(node=f"gw-{key}", alertgroup="SiteDown", severity="critical",
                    labels={"site": SITES[i % 5]})  # fmt: skip
    return base


def batches(
    total: int, size: int, rate: float, expire: int | None
) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, total, size):
        yield [event(i, rate, expire) for i in range(start, min(start + size, total))]


def rss_mb() -> float:
    """Current resident set size (/proc/self/statm, second field, in pages)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def checkpoints(total: int) -> list[int]:
    marks = {100_000, 250_000, 500_000, 1_000_000} if total >= 1_000_000 else set()
    marks |= {max(1, total * n // 20) for n in range(1, 21)}  # every 5 %
    return sorted(m for m in marks if m <= total)


def print_traced(rows: int) -> None:
    """Bytes allocated since tracing started and still held, per module, per table row."""
    gc.collect()
    held: dict[str, int] = {}
    for stat in tracemalloc.take_snapshot().statistics("filename"):
        name = stat.traceback[0].filename.rsplit("correlator/", 1)[-1]
        held[name] = held.get(name, 0) + stat.size
    tracemalloc.stop()
    print(f"tracemalloc: {sum(held.values()) / rows:,.0f} B per row held, by module:")
    for name, size in sorted(held.items(), key=lambda item: -item[1])[:20]:
        print(f"  {size / rows:8.1f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="events per second of event time"
    )
    parser.add_argument("--cap", type=int, default=10_000, help="the cap of every rule")
    parser.add_argument(
        "--expire-after", type=int, default=60, help="seconds, events and raised alerts"
    )
    parser.add_argument(
        "--open",
        type=int,
        metavar="N",
        help="memory mode: N events, nothing expires, every cap above N (all of it resident)",
    )
    parser.add_argument(
        "--daemon-heap",
        action="store_true",
        help="collect garbage as `correlator run` and `replay` do (correlator.heap.tune)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="tracemalloc: bytes held per row by allocating module (slow: a few times slower)",
    )
    args = parser.parse_args()
    if args.daemon_heap:
        heap.tune()  # `correlator run` and `correlator replay` do this first
    if args.open:
        args.events, args.expire_after, args.cap = args.open, None, max(args.cap, 2 * args.open)

    rules = load(args.cap, args.expire_after)
    engine = Engine(rules)
    named = {100_000, 250_000, 500_000, 1_000_000}
    marks = checkpoints(args.events)
    per_tick = max(1, int(args.rate))  # one tick per second of event time
    rss_at: dict[str, float] = {}
    dead = 0
    done = 0
    elapsed = 0.0
    gc.collect()
    rss_start = rss_mb()
    if args.trace:
        tracemalloc.start()  # from here: what the rules and the table allocate
    print(f"events {args.events:,}, {args.rate:,.0f}/s of event time, cap {args.cap:,} per rule, "
          f"expire_after {args.expire_after}, rules: {', '.join(engine.operators)}")  # fmt: skip
    print(f"{'events':>10} {'rss MB':>8} {'peak MB':>8} {'rows':>8} {'timers':>8} {'op state':>9}")
    for batch in batches(args.events, per_tick, args.rate, args.expire_after):
        began = time.perf_counter()
        for ev in batch:
            try:
                engine.process(ev, ev["timestamp"])
            except EventError:
                dead += 1
        engine.tick(batch[-1]["timestamp"])
        elapsed += time.perf_counter() - began
        before, done = done, done + len(batch)
        while marks and before < marks[0] <= done:
            mark = marks.pop(0)
            rss = rss_mb()
            if mark in named:
                rss_at[str(mark)] = round(rss, 1)
            state = sum(op.size() for op in engine.operators.values())
            print(f"{mark:>10,} {rss:>8.1f} {peak_rss_mb():>8.1f} {len(engine.table):>8,} "
                  f"{len(engine._timers):>8,} {state:>9,}")  # fmt: skip
    rss_at.setdefault(str(args.events), round(rss_mb(), 1))
    if args.trace:
        print_traced(len(engine.table))

    sizes = {name: op.size() for name, op in engine.operators.items()}
    events = engine.stats.rule_events
    cap_hits = {rule: n for (rule, what), n in sorted(events.items()) if what == "cap_hit"}
    rule_events = {f"{rule}/{what}": n for (rule, what), n in sorted(events.items())}
    print("operator sizes (cap " + f"{args.cap:,}):")
    for name, size in sizes.items():
        print(f"  {name:<20} {size:>8,}  cap hits {cap_hits.get(name, 0):>9,}")
    rows = len(engine.table)
    open_rows = sum(1 for row in engine.table.rows.values() if row.status != "cleared")
    per_row = (rss_mb() - rss_start) * 2**20 / max(rows, 1)
    print(f"table rows {rows:,} ({open_rows:,} open), {per_row:,.0f} B of RSS per row "
          f"with every rule's state; dead-lettered {dead:,}")  # fmt: skip
    print(json.dumps({
        "events_per_second": round(args.events / elapsed),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_mb_at": rss_at,
        "operator_sizes": sizes,
        "cap_hits": cap_hits,
        "rule_events": rule_events,
        "table_rows": rows,
        "open_rows": open_rows,
        "rss_bytes_per_row": round(per_row),
        "timers": len(engine._timers),
        "suppressed": len(engine.suppressions.holders),
        "dead_lettered": dead,
        "events": args.events,
        "rate": args.rate,
        "cap": args.cap,
        "expire_after": args.expire_after,
        "daemon_heap": args.daemon_heap,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
