"""`correlator check` on a big rule file: time and peak memory of loading it.

Generates one ~10 MB rule file (default 43,000 normalize rules, each with
matchers, a CEL condition on one in ten, and templates in `fields`, `labels`
and `annotations`, plus a few hundred correlate rules with `alert:`
templates), then loads it as `correlator check` does and prints the wall time
and the peak traced memory (tracemalloc) as one JSON line.

Run: `.venv/bin/python bench/check_big.py` (see bench/RESULTS.md);
`--write PATH` only writes the file (for `time correlator check PATH`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path

from correlator.ruleset.loader import load_rules


def normalize_rule(i: int) -> str:
    """One probe rule (about 230 bytes); templates vary so not every one is the same text."""
    when = f"\n    when: 'raw.pct > {i % 90}.0'" if i % 10 == 0 else ""
    return f"""  - name: p{i}
    match: ['raw.program="prog-{i}"', 'level=~"warn|err.*"']{when}
    fields: {{node: "{{{{ raw.host }}}}", alertgroup: G{i % 500},
      severity: "{{{{ 'critical' if raw.level == 'err' else 'minor' }}}}"}}
    labels: {{site: "{{{{ raw.dc }}}}-{i % 40}"}}
"""


def correlate_rule(i: int) -> str:
    return f"""  - name: storm-{i}
    kind: threshold
    match: ['alertgroup="Group{i}"', 'labels.site=~"ams.*"']
    group_by: [labels.site]
    count: {3 + i % 5}
    window: 2m
    alert:
      severity: critical
      summary: "{{{{ count }}}} Group{i} in {{{{ group.site }}}} ({{{{ members | length }}}})"
"""


def write(path: Path, rules: int, correlate: int) -> None:
    with path.open("w") as out:
        out.write("normalize:\n")
        for i in range(rules):
            out.write(normalize_rule(i))
        out.write("correlate:\n")
        for i in range(correlate):
            out.write(correlate_rule(i))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rules", type=int, default=43_000)
    parser.add_argument("--correlate", type=int, default=300)
    parser.add_argument("--write", type=Path, help="only write the rule file here")
    args = parser.parse_args()
    if args.write is not None:
        write(args.write, args.rules, args.correlate)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.yaml"
        write(path, args.rules, args.correlate)
        size = path.stat().st_size
        tracemalloc.start()
        started = time.perf_counter()
        ruleset = load_rules(path)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    print(
        json.dumps(
            {
                "file_mb": round(size / 1e6, 1),
                "normalize_rules": len(ruleset.normalize),
                "correlate_rules": len(ruleset.factories),
                "seconds": round(seconds, 1),
                "peak_traced_mb": round(peak / 1e6),
            }
        )
    )


if __name__ == "__main__":
    main()
