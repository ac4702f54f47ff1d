"""CPU instructions per event: the engine benchmark's mix, counted by valgrind.

Wall-clock figures from `bench/engine.py` move with the machine: on the
project's 2-core VMs the same code ran at 92k and at 30k events/s on two
different days. Instructions executed do not: this script runs the same
traffic and rule sets under `valgrind --tool=cachegrind` (with a fixed hash
seed, so dict layouts repeat) and reports instructions per event, with the
cost of loading rules and generating events subtracted. Use it to tell whether
a change made the engine cheaper; use `bench/engine.py` for events per second.

The garbage collector runs after a fixed number of allocations, so a change
that shifts allocations moves when full collections happen and with it the
total, by several hundred instructions per event either way. To compare two
versions of the code, run both with `--no-gc`; report figures with it on.

Run: `.venv/bin/python bench/instructions.py [--events N] [--identifiers N] [--no-gc]`
(needs `valgrind`; about a minute per rule set). The last line is one JSON
object with instructions_per_event for both rule sets.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import engine as bench  # the sibling benchmark: same rules and traffic

from correlator.engine import Engine

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def child(rule_set: str, events: int, identifiers: int, run: bool, collect: bool) -> None:
    """Load the rules and make the events; process them only when `run`."""
    with tempfile.TemporaryDirectory() as tmp:
        rules = bench.load(Path(tmp), every_kind=rule_set == "every-kind")
    traffic = bench.make_events(events, identifiers)
    if rule_set == "every-kind":
        traffic = bench.sprinkle(traffic)
    gc.collect()
    gc.freeze()  # as bench/engine.py does: collections do not walk the harness's input
    if not collect:
        gc.disable()
    engine = Engine(rules)
    if run:
        for event in traffic:
            engine.process(event, event["timestamp"])


def instructions(rule_set: str, events: int, identifiers: int, run: bool, collect: bool) -> int:
    command = [
        "valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
        sys.executable, __file__, "--child", "run" if run else "setup", "--rules", rule_set,
        "--events", str(events), "--identifiers", str(identifiers),
        *([] if collect else ["--no-gc"]),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    # a fixed command line: this interpreter on this script
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)  # noqa: S603
    found = _REFS.search(done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--identifiers", type=int, default=3_000)
    parser.add_argument("--rules", choices=("basic", "every-kind"), action="append")
    parser.add_argument(
        "--no-gc",
        action="store_true",
        help="run without the garbage collector, to compare two versions of the code",
    )
    parser.add_argument("--child", choices=("setup", "run"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    collect = not args.no_gc
    if args.child:
        child(args.rules[0], args.events, args.identifiers, args.child == "run", collect)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    result: dict[str, int] = {}
    for rule_set in args.rules or ["basic", "every-kind"]:
        setup = instructions(rule_set, args.events, args.identifiers, False, collect)
        total = instructions(rule_set, args.events, args.identifiers, True, collect)
        per_event = round((total - setup) / args.events)
        result[rule_set] = per_event
        print(f"{rule_set}: {per_event:,} instructions per event")
    print(json.dumps({
        "instructions_per_event": result,
        "events": args.events,
        "identifiers": args.identifiers,
        "gc": collect,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
