"""`correlator replay` against a Python floor, side by side in one run (issue 14).

The floor is what any Python program must spend per event: read a JSON line,
`orjson.loads` it, build `node:alertgroup:alertkey:manager` and fold the event
into a dict row (tally, last occurrence, severity, summary). The ratio of the
engine's rate to the floor's says how close the engine is to what Python
allows, and unlike a bare events/s figure it survives this VM's changes of
speed, because both are timed in the same run, turn about.

The mix: `--events` canonical events (default 1,000,000) over `--identifiers`
(default 20,000; the first event of each creates its row, so 98 % are
duplicates), one per 10 ms of event time, each with a `site` label: 70 %
generic problems, 10 % NodeUnreachable, 20 % JobStarted/JobEnded (info,
`expire_after: 1h`). Two rule sets are replayed on it:

- `normalize`: 48 normalize rules that never match (42 keyed on a `program`,
  4 on a `source` and `kind`, 2 regexes on `program` tried on every event);
- `threshold+pair`: the same plus a threshold (NodeUnreachable per site, 5 in
  5m, raised all the time, so every such event updates the storm alert) and
  a pair (JobStarted then JobEnded on alertkey within 1h).

Each replay is the command itself, `correlator replay EVENTS --rules DIR
--final` in a fresh process, its output to a file; its rate counts the events
over the wall time less the same command's time on an empty file (interpreter
start, imports, rule loading), measured in the same run. Each figure is the
best of `--runs`.

Run: `.venv/bin/python bench/replay.py [--events N] [--runs N]`. The last line
is one JSON object: events_per_second, floor_events_per_second and vs_floor
for the normalize set, the same with the `_pairs` suffix for threshold+pair.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import orjson

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SITES = ("ams1", "fra1", "lon1", "par1", "nyc1")
GENERIC = ("HighCPU", "DiskFull", "MemoryPressure", "ServiceDown", "LatencyHigh")


def normalize_rules() -> str:
    """48 probe rules, none of which matches a canonical event of the mix."""
    rules = [
        f"""
  - name: program-{i}
    match: ['raw.program="daemon{i}"']
    fields: {{node: "{{{{ raw.host }}}}", alertgroup: "Daemon{i}", summary: "{{{{ raw.msg }}}}"}}"""
        for i in range(42)
    ]
    rules += [
        f"""
  - name: source-{i}
    match: ['raw.source="collector{i}"', 'raw.kind="metric"']
    fields: {{node: "{{{{ raw.instance }}}}", alertgroup: "Metric{i}"}}"""
        for i in range(4)
    ]
    rules += [
        f"""
  - name: kernel-{i}
    match: ['raw.program=~"kernel{i}.*"']
    fields: {{node: "{{{{ raw.host }}}}", alertgroup: Kernel{i}}}"""
        for i in range(2)
    ]
    assert len(rules) == 48
    return "normalize:" + "".join(rules) + "\n"


CORRELATE = """
correlate:
  - name: site-unreachable
    kind: threshold
    match: ['alertgroup="NodeUnreachable"']
    group_by: [labels.site]
    count: 5
    window: 5m
    alert: {node: "{{ group.site }}", alertgroup: SiteUnreachable, severity: critical}
  - name: job-late
    kind: pair
    first: ['alertgroup="JobStarted"']
    second: ['alertgroup="JobEnded"']
    on: [alertkey]
    within: 1h
"""


def identity(n: int, identifiers: int) -> dict[str, Any]:
    """The fields of identifier number `n`: 70 % generic, 10 % unreachable, 20 % jobs."""
    share = n * 100 // identifiers
    site = SITES[n % len(SITES)]
    if share < 70:
        return {"node": f"host-{n}", "alertgroup": GENERIC[n % len(GENERIC)],
                "alertkey": f"k{n % 7}", "manager": "prometheus", "severity": "major",
                "summary": "above threshold", "labels": {"site": site}}  # fmt: skip
    if share < 80:
        return {"node": f"host-{n}", "alertgroup": "NodeUnreachable", "manager": "ping",
                "severity": "critical", "summary": "no reply", "labels": {"site": site}}  # fmt: skip
    job = n // 2
    return {"node": f"batch-{job % 50}", "manager": "scheduler", "type": "info",
            "alertgroup": "JobStarted" if n % 2 == 0 else "JobEnded", "alertkey": f"job-{job}",
            "summary": "batch job", "expire_after": "1h", "labels": {"site": site}}  # fmt: skip


def write_events(path: Path, count: int, identifiers: int, seed: int = 14) -> None:
    """Every identifier once, in order, then duplicates drawn at random."""
    rng = random.Random(seed)
    shapes = [identity(n, identifiers) for n in range(identifiers)]
    with path.open("wb") as out:
        for i in range(count):
            n = i if i < identifiers else rng.randrange(identifiers)
            out.write(orjson.dumps({"timestamp": START + i * 0.01, **shapes[n]}) + b"\n")


def floor(path: Path, count: int) -> float:
    """Events per second of the floor over the file's `count` events (a dict row per identifier)."""
    gc.collect()
    began = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {}
    loads = orjson.loads
    with path.open("rb") as lines:
        for line in lines:
            event = loads(line)
            key = (
                f"{event['node']}:{event['alertgroup']}:"
                f"{event.get('alertkey', '')}:{event.get('manager', '')}"
            )
            row = rows.get(key)
            if row is None:
                rows[key] = {"tally": 1, "last_occurrence": event["timestamp"],
                             "severity": event.get("severity", 1),
                             "summary": event.get("summary", "")}  # fmt: skip
            else:
                row["tally"] += 1
                row["last_occurrence"] = event["timestamp"]
                row["severity"] = event.get("severity", 1)
                row["summary"] = event.get("summary", "")
    return count / (time.perf_counter() - began)


def replay_seconds(events: Path, rules: Path, out: Path) -> float:
    """Wall time of `correlator replay --final` in its own process."""
    command = [sys.executable, "-m", "correlator", "replay", str(events), "--rules", str(rules),
               "--final"]  # fmt: skip
    began = time.perf_counter()
    with out.open("wb") as sink:
        subprocess.run(command, stdout=sink, check=True)  # noqa: S603 - this interpreter, our files
    return time.perf_counter() - began


def calibration_ms() -> float:
    """The fixed Python workload of bench/engine.py, timed (lower is faster)."""
    runs = timeit.repeat("sorted(str(i) for i in range(10000))", number=20, repeat=5)
    return min(runs) / 20 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--identifiers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sets = {"normalize": folder / "normalize", "threshold+pair": folder / "pairs"}
        for rules in sets.values():
            rules.mkdir()
            (rules / "normalize.yaml").write_text(normalize_rules())
        (sets["threshold+pair"] / "correlate.yaml").write_text(CORRELATE)
        events, empty, out = folder / "events.jsonl", folder / "empty.jsonl", folder / "out"
        write_events(events, args.events, args.identifiers)
        empty.write_bytes(b"")
        speed = calibration_ms()
        print(f"events: {args.events:,}, identifiers: {args.identifiers:,}, runs: {args.runs}")
        print(f"calibration before: {speed:.2f} ms for a fixed Python workload (lower is faster)")
        floors: list[float] = []
        rates: dict[str, list[float]] = {name: [] for name in sets}
        for _ in range(args.runs):  # turn about, so a slow spell hits every figure alike
            floors.append(floor(events, args.events))
            for name, rules in sets.items():
                start = replay_seconds(empty, rules, out)
                rates[name].append(args.events / (replay_seconds(events, rules, out) - start))
            print(f"  floor {floors[-1]:,.0f}; " + "; ".join(
                f"{name} {r[-1]:,.0f}" for name, r in rates.items()))  # fmt: skip
        after = calibration_ms()
    best_floor = max(floors)
    result: dict[str, Any] = {"floor_events_per_second": round(best_floor)}
    for name, suffix in (("normalize", ""), ("threshold+pair", "_pairs")):
        best = max(rates[name])
        print(f"{name}: best {best:,.0f} events/s, floor {best_floor:,.0f}, "
              f"{best / best_floor:.3f}x the floor")  # fmt: skip
        result[f"events_per_second{suffix}"] = round(best)
        result[f"vs_floor{suffix}"] = round(best / best_floor, 3)
    print(f"calibration after: {after:.2f} ms")
    result.update(events=args.events, identifiers=args.identifiers, runs=args.runs,
                  calibration_ms=[round(speed, 2), round(after, 2)])  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
