"""Engine throughput and memory benchmark (no I/O).

The mix: 10,000 distinct identifiers, 90 % of events duplicates, 50 normalize
rules of which most never match (keyed on other programs/sources, plus a few
regex and CEL rules that are tried and fail). 60 % of the events are syslog
lines that a templated rule turns into alerts, 40 % arrive already canonical.

Run: `.venv/bin/python bench/engine.py` (see bench/RESULTS.md). The last line
is one JSON object with events_per_second and bytes_per_alert.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from correlator.engine import Engine
from correlator.ruleset.loader import RuleSet, load_rules

START = 1_767_225_600.0


def normalize_rules() -> str:
    """50 probe rules; only `syslog-link` matches the bench traffic."""
    rules = [
        """
  - name: syslog-link
    match: ['raw.program="ifmon"']
    fields: {node: "{{ raw.host }}", alertgroup: LinkDown, alertkey: "{{ raw.ifname }}",
             severity: major, type: "{{ 'resolution' if raw.state == 'up' else 'problem' }}",
             summary: "{{ raw.msg }}"}
    labels: {site: "{{ raw.dc }}"}
    identifier: [node, alertgroup, alertkey]
    expire_after: 1h"""
    ]
    for i in range(42):
        rules.append(f"""
  - name: program-{i}
    match: ['raw.program="daemon{i}"']
    fields: {{node: "{{{{ raw.host }}}}", alertgroup: "Daemon{i}", summary: "{{{{ raw.msg }}}}"}}""")
    for i in range(4):
        rules.append(f"""
  - name: source-{i}
    match: ['raw.source="collector{i}"', 'raw.kind="metric"']
    fields: {{node: "{{{{ raw.instance }}}}", alertgroup: "Metric{i}"}}""")
    for i in range(2):
        rules.append(f"""
  - name: kernel-{i}
    match: ['raw.program=~"kernel{i}.*"']
    fields: {{node: "{{{{ raw.host }}}}", alertgroup: Kernel{i}}}""")
    rules.append("""
  - name: cel-disk
    match: ['raw.kind="disk"']
    when: 'has(raw.disk_pct) && raw.disk_pct > 95.0'
    fields: {node: "{{ raw.host }}", alertgroup: DiskFull}""")
    assert len(rules) == 50
    return "normalize:" + "".join(rules) + "\n"


def correlate_rules() -> str:
    return """
correlate:
  - name: generic-link-clear
    kind: clear
    problem: ['alertgroup="LinkDown"']
    resolution: ['alertgroup="LinkUp"']
    on: [node, alertkey]
"""


def load(tmp: Path) -> RuleSet:
    (tmp / "normalize.yaml").write_text(normalize_rules())
    (tmp / "correlate.yaml").write_text(correlate_rules())
    return load_rules(tmp)


def make_events(count: int, identifiers: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` events over `identifiers` distinct identifiers, 1 per 10 ms."""
    rng = random.Random(seed)
    sites = ["ams1", "fra1", "lon1", "par1", "nyc1"]
    events: list[dict[str, Any]] = []
    for i in range(count):
        n = i if i < identifiers else rng.randrange(identifiers)
        ts = START + i * 0.01
        if n % 10 < 6:
            host, ifname = f"edge-r{n // 48}", f"xe-0/0/{n % 48}"
            events.append({
                "timestamp": ts, "program": "ifmon", "host": host, "ifname": ifname,
                "state": "down", "dc": sites[n % 5], "msg": f"{ifname} changed state to down",
            })  # fmt: skip
        else:
            events.append({
                "timestamp": ts, "node": f"host-{n}", "alertgroup": "HighLatency",
                "severity": "minor", "summary": "p99 latency above SLO",
                "labels": {"service": f"svc-{n % 40}", "env": "prod", "site": sites[n % 5]},
            })  # fmt: skip
    rng.shuffle(events[identifiers:])  # creations first, then duplicates in random order
    for i, event in enumerate(events):
        event["timestamp"] = START + i * 0.01
    return events


def throughput(rules: RuleSet, events: list[dict[str, Any]]) -> float:
    engine = Engine(rules)
    process = engine.process
    gc.collect()
    began = time.perf_counter()
    for event in events:
        process(event, event["timestamp"])
    elapsed = time.perf_counter() - began
    assert len(engine.table) > 0
    return len(events) / elapsed


def bytes_per_alert(rules: RuleSet, events: list[dict[str, Any]], identifiers: int) -> float:
    """Peak traced memory while opening `identifiers` alerts, per alert."""
    creations = events[:identifiers]
    gc.collect()
    tracemalloc.start()
    engine = Engine(rules)
    base, _ = tracemalloc.get_traced_memory()
    for event in creations:
        engine.process(event, event["timestamp"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(engine.table) == identifiers
    return (peak - base) / identifiers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--identifiers", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rules = load(Path(tmp))
    events = make_events(args.events, args.identifiers)
    throughput(rules, events)  # warm-up: first-touch memory, caches
    rates = [throughput(rules, events) for _ in range(args.runs)]
    per_alert = bytes_per_alert(rules, events, args.identifiers)
    best = max(rates)
    print(f"events: {args.events}, identifiers: {args.identifiers}, normalize rules: 50")
    print(f"runs (events/s): {', '.join(f'{r:,.0f}' for r in rates)}")
    print(f"best: {best:,.0f} events/s; memory per open alert: {per_alert:,.0f} bytes")
    print(json.dumps({
        "events_per_second": round(best),
        "events_per_second_median": round(sorted(rates)[len(rates) // 2]),
        "bytes_per_alert": round(per_alert),
        "events": args.events,
        "identifiers": args.identifiers,
        "normalize_rules": 50,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
