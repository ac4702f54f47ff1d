"""The churny storm (issue 14): `correlator replay --final` against the floor.

`bench/storm.py` makes every event a new key; a real storm churns: alerts open,
clear, reopen and are deleted, on a fixed estate, while every kind of rule is
busy. The mix, per 100 events, over 20,000 nodes `n-00000`.. with a site, a
service and a top-of-rack switch each (1,000 tor switches over 20 cores):

- 35 new problems: a node and a check (LinkDown, HighCPU, DiskFull,
  ServiceDown, HighLatency) not open at the time (a new row or a reopen);
- 30 resolutions of open problems (LinkUp for a LinkDown, cleared by the
  `clear` rule; a `type: resolution` of the same identifier for the others);
- 12 heartbeats from 2,000 agents, 2 % of which fall silent for 10 minutes;
- 10 job events (start, then the end of a job started 100 jobs earlier; one
  job in ten never ends);
- 4 deploys of one of the 200 services;
- 3 power alarms on a node (an inhibit rule mutes the node's other alerts);
- 6 switch problems (tor, sometimes core), roots of the topology rule.

9 % of the events arrive up to a minute late (their stamp is earlier than
the newest by up to 60 s). Events come 200 per second of event time. One rule
of every correlation kind is loaded (`rules_yaml`) and engaged: before the
timed runs, a counting run records what each rule did through the engine
(alerts raised, suppressions, parents, modifications, clears, cap hits) and
the bench fails if any rule did nothing.

Each timed run is what `correlator replay EVENTS --rules DIR --final` does
(`correlator.replay.run` on an engine that makes no changes), in this process
and without its start-up; the floor is `bench/replay.py`'s, on the same file,
turn about. Each figure is the best of `--runs`. `--profile FILE` writes a
cProfile of one more replay instead. The heap policy is `correlator replay`'s
(`correlator.heap.tune`: young collections per 100,000 new objects, as the
daemon's); `--python-heap` keeps Python's defaults (every 700) to compare.

Run: `.venv/bin/python bench/churn.py [--events N] [--runs N] [--profile F]`.
The last line is one JSON object: events_per_second, floor_events_per_second,
vs_floor, and the rule counts.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))

from replay import calibration_ms, floor  # the sibling benchmark's floor

from correlator import heap
from correlator import replay as command
from correlator.correlate.base import Operator, ParentLink
from correlator.engine import Engine
from correlator.model import Alert
from correlator.ruleset.loader import RuleSet, load_rules

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
RATE = 200.0  # events per second of event time
NODES = 20_000
RACK = 20  # nodes per tor switch
CORES = 20
SERVICES = 200
AGENTS = 2_000
FLAKY = 100  # nodes that take a fifth of the problems
SITES = ("ams1", "fra1", "lon1", "par1", "nyc1")
# check → (severity, manager); LinkDown is keyed by interface, the others by check
CHECKS = {
    "LinkDown": ("major", "snmp"),
    "HighCPU": ("minor", "prometheus"),
    "DiskFull": ("critical", "prometheus"),
    "ServiceDown": ("critical", "nagios"),
    "HighLatency": ("major", "prometheus"),
}


def rules_yaml() -> str:
    """One rule of every correlation kind, each engaged by the churn."""
    tors = NODES // RACK
    graph = "".join(f"  n-{n:05d}: {{depends_on: [tor-{n // RACK}]}}\n" for n in range(NODES))
    graph += "".join(f"  tor-{t}: {{depends_on: [core-{t % CORES}]}}\n" for t in range(tors))
    return f"""
topology:
{graph}
correlate:
  - name: site-link-storm
    kind: threshold
    match: ['alertgroup="LinkDown"']
    group_by: [labels.site]
    distinct: node
    count: 20
    window: 2m
    alert: {{node: "{{{{ group.site }}}}", alertgroup: SiteLinkStorm, severity: critical}}
  - name: job-late
    kind: pair
    first: ['alertgroup="JobStarted"']
    second: ['alertgroup="JobFinished"']
    on: [alertkey]
    within: 2m
  - name: heartbeat-lost
    kind: absence
    match: ['alertgroup="Heartbeat"']
    group_by: [node]
    for: 2m
  - name: service-incident
    kind: incident
    match: ['severity>=major', 'labels.service=~"svc-.*"']
    group_by: [labels.service]
    window: 5m
  - name: network-topology
    kind: topology
    match: ['alertgroup=~"LinkDown|SwitchDown"']
  - name: link-flapping
    kind: flapping
    match: ['alertgroup="LinkDown"']
    changes: 3
    window: 10m
    stable_for: 5m
  - name: deploy-suspect
    kind: change
    change: ['alertgroup="Deploy"']
    match: ['severity>=minor', 'labels.service=~"svc-.*"']
    on: [labels.service]
    within: 10m
  - name: power-mute
    kind: inhibit
    source_matchers: ['alertname="PowerAlarm"']
    target_matchers: ['alertname!="PowerAlarm"']
    equal: [node]
  - name: critical-unacked
    kind: escalate
    match: ['severity>=critical']
    after: 5m
    set: {{labels.priority: P1}}
    receiver: oncall
  - name: rack-maintenance
    kind: maintenance
    match: ['node=~"n-01.*"']
    schedule: {{cron: "*/15 * * * *", duration: 3m}}
  - name: link-clear
    kind: clear
    problem: ['alertgroup="LinkDown"']
    resolution: ['alertgroup="LinkUp"']
    on: [node, alertkey]
"""


def load(folder: Path) -> RuleSet:
    (folder / "churn.yaml").write_text(rules_yaml())
    return load_rules(folder)


Key = tuple[str, str, str]  # node, alertgroup, alertkey


class Churn:
    """The event stream: a pool of open problems, jobs in flight, heartbeat agents."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.open: list[Key] = []  # open problems, for resolutions (swap-remove)
        self.where: dict[Key, int] = {}
        self.jobs = 0
        self.beats = 0
        self.t = 0.0  # seconds of event time since START

    def _open(self, key: Key) -> bool:
        if key in self.where:
            return False
        self.where[key] = len(self.open)
        self.open.append(key)
        return True

    def _close(self) -> Key | None:
        if not self.open:
            return None
        at = self.rng.randrange(len(self.open))
        key, last = self.open[at], self.open[-1]
        self.open[at], self.where[last] = last, at
        self.open.pop()
        del self.where[key]
        return key

    def event(self, i: int) -> dict[str, Any]:
        """Event number `i` (its stamp is set by the caller)."""
        self.t = i / RATE
        slot = i % 100
        if slot < 35:
            return self.problem()
        if slot < 65:
            return self.resolution() or self.problem()
        if slot < 77:
            return self.heartbeat()
        if slot < 87:
            return self.job(slot % 2 == 0)
        if slot < 91:
            service = f"svc-{self.rng.randrange(SERVICES)}"
            return {"node": "cd", "alertgroup": "Deploy", "alertkey": f"deploy-{i}",
                    "manager": "argo", "type": "info", "expire_after": "30m",
                    "labels": {"service": service}}  # fmt: skip
        if slot < 94:
            return self.node_problem("PowerAlarm", "power", "critical", "pdu") or self.problem()
        return self.switch_problem()

    def problem(self) -> dict[str, Any]:
        for _ in range(8):  # a check that is not open now
            check = self.rng.choice(tuple(CHECKS))
            severity, manager = CHECKS[check]
            alertkey = f"xe-0/0/{self.rng.randrange(4)}" if check == "LinkDown" else check.lower()
            event = self.node_problem(check, alertkey, severity, manager)
            if event:
                return event
        return self.heartbeat()

    def node_problem(
        self, check: str, alertkey: str, severity: str, manager: str
    ) -> dict[str, Any]:
        """A problem on a node (one in five on the first `FLAKY` nodes, whose links flap)."""
        rng = self.rng
        n = rng.randrange(FLAKY) if rng.random() < 0.2 else rng.randrange(NODES)
        if n < FLAKY and check == "LinkDown":
            alertkey = "xe-0/0/0"
        node = f"n-{n:05d}"
        if not self._open((node, check, alertkey)):
            return {}
        return {"node": node, "alertgroup": check, "alertkey": alertkey, "manager": manager,
                "severity": severity, "summary": f"{check} on {node}",
                "labels": {"site": SITES[n % len(SITES)], "service": f"svc-{n % SERVICES}",
                           "rack": f"tor-{n // RACK}"}}  # fmt: skip

    def switch_problem(self) -> dict[str, Any]:
        roll = self.rng.randrange(NODES // RACK + CORES)
        node = f"tor-{roll}" if roll < NODES // RACK else f"core-{roll % CORES}"
        if not self._open((node, "SwitchDown", "uplink")):
            return self.problem()
        return {"node": node, "alertgroup": "SwitchDown", "alertkey": "uplink",
                "manager": "snmp", "severity": "critical", "summary": f"{node} uplink down",
                "labels": {"site": SITES[roll % len(SITES)]}}  # fmt: skip

    def resolution(self) -> dict[str, Any] | None:
        key = self._close()
        if key is None:
            return None
        node, check, alertkey = key
        if check == "LinkDown":
            return {"node": node, "alertgroup": "LinkUp", "alertkey": alertkey,
                    "manager": "snmp", "type": "resolution"}  # fmt: skip
        manager = "snmp" if check == "SwitchDown" else "pdu" if check == "PowerAlarm" else None
        return {"node": node, "alertgroup": check, "alertkey": alertkey,
                "manager": manager or CHECKS[check][1], "type": "resolution"}  # fmt: skip

    def heartbeat(self) -> dict[str, Any]:
        """The next live agent, round robin; agent j is silent while (t // 300 + j) % 50 == 0."""
        while True:
            j = self.beats % AGENTS
            self.beats += 1
            if (int(self.t // 300) + j) % 50:
                break
        return {"node": f"n-{j * (NODES // AGENTS):05d}", "alertgroup": "Heartbeat",
                "alertkey": "agent", "manager": "agent", "type": "info",
                "expire_after": "10m"}  # fmt: skip

    def job(self, start: bool) -> dict[str, Any]:
        if start:
            self.jobs += 1
            k = self.jobs
        else:
            k = self.jobs - 100
            if k % 10 == 0 or k < 1:  # one job in ten never ends
                return self.job(True)
        return {"node": f"batch-{k % 50}", "alertgroup": "JobStarted" if start else "JobFinished",
                "alertkey": f"job-{k}", "manager": "scheduler", "type": "info",
                "expire_after": "1h"}  # fmt: skip


def write_events(path: Path, count: int, seed: int = 14) -> None:
    """`count` events, 9 % of them stamped up to a minute before the newest."""
    churn = Churn(seed)
    late = random.Random(seed + 1)
    with path.open("wb") as out:
        for i in range(count):
            event = churn.event(i)
            at = START + i / RATE
            if late.random() < 0.09:
                at -= late.uniform(0.0, 60.0)
            out.write(orjson.dumps({"timestamp": round(at, 3), **event}) + b"\n")


class CountingEngine(Engine):
    """An engine that counts, per rule, what each rule did through it (untimed runs only)."""

    def __init__(self, rules: RuleSet) -> None:
        self.acts: Counter[tuple[str, str]] = Counter()
        super().__init__(rules, snapshots=False, changes=False)

    def raise_alert(self, operator: Operator, group: Sequence[tuple[str, Any]], now: float,
                    **options: Any) -> Alert:  # fmt: skip
        self.acts[(operator.name, "raised")] += 1
        return super().raise_alert(operator, group, now, **options)

    def suppress(self, alert: Alert, now: float, by: str, why: str) -> None:
        self.acts[(by, "suppressed")] += 1
        super().suppress(alert, now, by, why)

    def set_parent(
        self, alert: Alert, link: ParentLink | None, now: float, who: str, why: str
    ) -> bool:
        self.acts[(who, "parent")] += 1
        return super().set_parent(alert, link, now, who, why)

    def modify(
        self, alert: Alert, now: float, who: str, why: str, *, links_only: bool = False
    ) -> None:
        self.acts[(who, "modified")] += 1
        super().modify(alert, now, who, why, links_only=links_only)

    def clear(
        self, alert: Alert, now: float, who: str, why: str, *, at: float | None = None
    ) -> None:
        self.acts[(who, "cleared")] += 1
        super().clear(alert, now, who, why, at=at)

    def schedule(self, when: float, operator: Operator, key: Hashable) -> None:
        self.acts[(operator.name, "timers")] += 1
        super().schedule(when, operator, key)


def replay_seconds(engine: Engine, events: Path, out: Path) -> float:
    """What `correlator replay EVENTS --final` spends after loading its rules."""
    gc.collect()
    began = time.perf_counter()
    with events.open("rb") as lines, out.open("w") as sink:
        err = io.StringIO()
        status = command.run(engine, lines, sink, err, final=True)
    elapsed = time.perf_counter() - began
    assert status == 0, err.getvalue()[:2000]
    return elapsed


def check_rules(rules: RuleSet, events: Path, out: Path) -> dict[str, dict[str, int]]:
    """What every rule did in one replay; fails when a rule did nothing."""
    engine = CountingEngine(rules)
    replay_seconds(engine, events, out)
    acts: dict[str, dict[str, int]] = {name: {} for name in engine.operators}
    for (rule, what), n in sorted(engine.acts.items()):
        if rule in acts:
            acts[rule][what] = n
    for (rule, what), n in sorted(engine.stats.rule_events.items()):
        acts[rule][what] = n
    print(f"table rows at the end: {len(engine.table):,}; what each rule did:")
    for name, did in acts.items():
        kind = engine.operators[name].kind
        print(f"  {name:<18} {kind:<12} " + ", ".join(f"{w} {n:,}" for w, n in did.items()))
    idle = [name for name, did in acts.items() if not set(did) - {"timers", "cap_hit"}]
    if idle:
        raise SystemExit(f"rules not engaged by the mix: {', '.join(idle)}")
    return acts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of one replay to this file")
    parser.add_argument(
        "--python-heap",
        action="store_true",
        help="Python's collection thresholds, not `correlator replay`'s (correlator.heap)",
    )
    args = parser.parse_args()
    if not args.python_heap:
        heap.tune()  # what `correlator replay` does before it reads
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "rules").mkdir()
        rules = load(folder / "rules")
        events, out = folder / "events.jsonl", folder / "out.json"
        write_events(events, args.events)
        print(f"events: {args.events:,}, runs: {args.runs}, rules: {len(rules.factories)}")
        acts = check_rules(rules, events, out)  # also the warm-up
        if args.profile:
            engine = Engine(rules, snapshots=False, changes=False)
            cProfile.runctx("replay_seconds(engine, events, out)", globals(), locals(),
                            args.profile)  # fmt: skip
            print(f"profile written to {args.profile}")
            return
        speed = calibration_ms()
        print(f"calibration before: {speed:.2f} ms for a fixed Python workload (lower is faster)")
        floors: list[float] = []
        rates: list[float] = []
        for _ in range(args.runs):  # turn about, so a slow spell hits both alike
            floors.append(floor(events, args.events))
            engine = Engine(rules, snapshots=False, changes=False)
            rates.append(args.events / replay_seconds(engine, events, out))
            print(f"  floor {floors[-1]:,.0f}; replay --final {rates[-1]:,.0f} events/s")
        after = calibration_ms()
    best, best_floor = max(rates), max(floors)
    print(f"churn: best {best:,.0f} events/s, floor {best_floor:,.0f}, "
          f"{best / best_floor:.4f}x the floor; calibration after: {after:.2f} ms")  # fmt: skip
    print(json.dumps({
        "events_per_second": round(best),
        "floor_events_per_second": round(best_floor),
        "vs_floor": round(best / best_floor, 4),
        "events": args.events,
        "runs": args.runs,
        "python_heap": args.python_heap,
        "rule_counts": acts,
        "calibration_ms": [round(speed, 2), round(after, 2)],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
