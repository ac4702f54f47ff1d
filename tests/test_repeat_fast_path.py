"""The repeat fast path changes nothing but speed: byte-identical output to the full path.

Each scenario runs twice, once as shipped and once with the fast path refused
(`repeat_of` answering None, so every event is normalized into an occurrence
and folded by the table): the example scenarios through `correlator replay`,
the rule tests under rules/ through `correlator test`'s runner, and random
storms that mix exact repeats with every variation the fast path must hand
to the full path (a changed field, a spelling to convert, a late or
unstamped event, a pinned or cleared row, a normalize rule that applies).
Likewise `replay --final`, which makes no change objects, prints the table
a replay that makes them ends with.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from correlator import engine as engine_module
from correlator import replay as replay_module
from correlator import testing
from correlator.api.alertmanager import to_event
from correlator.cli import main
from correlator.engine import Engine
from correlator.errors import EventError
from correlator.model import Change
from correlator.ruleset.loader import RuleSet, load_rules
from correlator.table.table import AlertTable

REPO = Path(__file__).parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.jsonl"))
RULE_TESTS = sorted((REPO / "rules").rglob("*_test.yaml"))


@contextmanager
def fast_path(enabled: bool) -> Iterator[list[int]]:
    """Run the block with the fast path on or refused; yields [repeats it folded]."""
    folded = [0]
    fold_same = AlertTable.fold_same

    def counted(table: AlertTable, row: Any, at: float, now: float, *changed: Any) -> None:
        folded[0] += 1
        fold_same(table, row, at, now, *changed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AlertTable, "fold_same", counted)
        if not enabled:
            patch.setattr(engine_module, "repeat_of", lambda *args: None)
        yield folded


def alike(run: Callable[[], list[bytes]]) -> tuple[list[bytes], int]:
    """Run on both paths, check the outputs are equal; the output and the repeats folded."""
    with fast_path(True) as folded:
        fast = run()
    with fast_path(False):
        full = run()
    assert fast == full
    return fast, folded[0]


def replay(events: Path, *options: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        main(["replay", str(events), "--rules", str(REPO / "rules"), *options])
    return out.getvalue()


@pytest.mark.parametrize("options", [("--until", "+4h"), ("--final",)])
def test_example_scenarios_replay_alike(options: tuple[str, ...]) -> None:
    """Every example scenario prints the same changes (or final table) on both paths."""
    for events in EXAMPLES:
        with fast_path(True):
            fast = replay(events, *options)
        with fast_path(False) as folded:
            full = replay(events, *options)
        assert fast == full, events.name
        assert folded == [0]


@pytest.mark.parametrize("events", EXAMPLES, ids=lambda p: p.name)
def test_final_table_alike_without_changes(events: Path) -> None:
    """`replay --final` makes no change objects; the table it prints is the one they'd give."""
    out = io.StringIO()
    with events.open("rb") as lines:
        engine = Engine(load_rules(REPO / "rules"), changes=True, snapshots=True)
        replay_module.run(engine, lines, out, io.StringIO(), final=True, until="+4h")
    assert replay(events, "--final", "--until", "+4h") == out.getvalue()


def recorded(run: Callable[[], object]) -> tuple[list[bytes], list[int]]:
    """What every engine made while `run` ran `correlator test`'s cases, serialized at once."""
    seen: list[bytes] = []

    class Recording(Engine):
        def process(self, event: dict[str, Any], now: float) -> list[Change]:
            return self._keep(super().process(event, now))

        def tick(self, now: float) -> list[Change]:
            return self._keep(super().tick(now))

        def run_timers_before(self, now: float) -> list[Change]:
            return self._keep(super().run_timers_before(now))

        def _keep(self, changes: list[Change]) -> list[Change]:
            seen.extend(orjson.dumps(change.to_dict()) for change in changes)
            return changes

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(testing, "Engine", Recording)
        with fast_path(True) as folded:
            run()
    return seen, folded


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_tests_make_the_same_changes(path: Path) -> None:
    """The example rules' unit tests produce the same change stream on both paths."""
    fast, _ = recorded(lambda: testing.run_test_file(path))
    with fast_path(False):
        full, _ = recorded(lambda: testing.run_test_file(path))
    assert fast == full


STORM_RULES = """
normalize:
  - name: syslog
    match: ['raw.program="ifmon"']
    fields: {node: "{{ raw.host }}", alertgroup: Down, severity: major}
topology: {h1: {depends_on: [sw1]}, h2: {depends_on: [sw1]}, sw1: {depends_on: [core]}}
inhibit_rules:
  - {source_matchers: ['alertgroup="Site"'], target_matchers: ['severity<=major'], equal: [site]}
correlate:
  - {name: topo, kind: topology, match: ['alertgroup=~"Down|Site"']}
  - {name: thr, kind: threshold, match: ['alertgroup="Down"', 'tally>=2'],
     group_by: [labels.site], count: 2, window: 5m}
  - {name: inc, kind: incident, match: ['alertgroup=~"Down|Lat"'], group_by: [labels.site],
     window: 120s}
  - {name: flap, kind: flapping, changes: 3, window: 10m, stable_for: 2m}
  - {name: esc, kind: escalate, match: ['severity>=major', 'tally>=3'], after: 20m,
     set: {labels.priority: P1, severity: critical, summary: escalated}}
  - {name: pr, kind: pair, first: ['alertgroup="JobStart"'], second: ['alertgroup="JobEnd"'],
     on: [node], within: 90s, alert: {summary: "{{ summary }} {{ tally }} {{ labels.x }}"}}
  - {name: clr, kind: clear, problem: ['alertgroup="Down"'], resolution: ['alertgroup="Up"'],
     on: [node]}
"""
# each field's spellings: the usual ones repeat exactly, the others must take the full path
CHOICES: dict[str, list[Any]] = {
    "node": ["core", "sw1", "h1", "h2", "x", "x:y"],
    "alertgroup": ["Lat", "Other", "Down", "Site", "JobStart", "JobEnd", "Up", "SiteUp", "", 7],
    "alertkey": ["", "k", "y:k", 3],
    "manager": ["", "m"],
    "severity": [
        "major",
        "Major",
        4,
        "4",
        "critical",
        "clear",
        0,
        None,
        "",
        "minor",
        4.0,
        True,
        9,
        "x",
    ],
    "type": ["problem", "info", "resolution", " problem", "", None, "odd"],
    "summary": ["", "s", "escalated", None, 5],
    "labels": [{"site": "a"}, {"site": "b"}, {"site": "a", "x": "1"}, {}, "", {"site": 1}, [1]],
    "annotations": [
        {"r": "1"},
        {},
        {"r": None},
        {"r": "2"},
        {"r": "1", "s": ""},
        {"r": 1},
        {1: "x"},
    ],
    "expire_after": ["1h", "5m", "300", "bad", "", 60],
    "identifier": ["", "X", 5],
    "agent": ["", "a"],
}


def storm_event(rng: random.Random) -> dict[str, Any]:
    """A random event: most fields usual, any of them now and then unusual or absent."""
    event: dict[str, Any] = {}
    for name, values in CHOICES.items():
        if rng.random() < 0.5:
            usual = values[: {"node": 2, "alertgroup": 3, "labels": 2}.get(name, 1)]
            event[name] = rng.choice(values if rng.random() < 0.15 else usual)
    if rng.random() < 0.05:
        event["program"], event["host"] = "ifmon", rng.choice(CHOICES["node"])
    return event


def stamp(rng: random.Random, now: float) -> Any:
    """Mostly now or a little before it; sometimes late, whole, as text or missing."""
    roll = rng.random()
    at = now - rng.choice([0, 0, 0, 0, 0, 0, 1, 30, 1000])
    if roll < 0.05:
        return None
    if roll < 0.1:
        return int(at)
    if roll < 0.12:
        return "2026-01-01T00:00:00Z"
    return at


def storm(rules: RuleSet, seed: int) -> tuple[list[bytes], int]:
    """Every outcome of a random storm, serialized as it happened, and the repeats folded fast."""
    rng = random.Random(seed)
    engine = Engine(rules, snapshots=True)
    sent: list[dict[str, Any]] = []
    out: list[bytes] = []
    now = 1_767_225_600.0
    for _ in range(2000):
        now += rng.choice([0, 0, 1, 2, 10, 45])
        roll = rng.random()
        if roll < 0.03 and engine.table.rows:
            action = rng.choice(["ack", "unack", "clear", "severity", "journal"])
            value = {"severity": "minor", "journal": "looked"}.get(action, "")
            target = rng.choice(sorted(engine.table.rows))
            changes = engine.operate(action, target, "op", now, value)
        elif roll < 0.08:
            changes = engine.tick(now)
        else:
            event = rng.choice(sent) if sent and roll < 0.75 else storm_event(rng)
            sent.append(event)
            event = {**event, "timestamp": stamp(rng, now)}
            if event["timestamp"] is None:
                del event["timestamp"]
            try:
                changes = engine.process(event, now)
            except EventError as exc:
                out.append(f"dead-lettered ({exc.reason}): {exc}".encode())
                continue
        out.extend(orjson.dumps(change.to_dict()) for change in changes)
    out.append(orjson.dumps([row.to_dict() for row in engine.table.rows.values()]))
    out.append(repr(asdict(engine.stats)).encode())
    return out, engine.stats.dedup_hits


@pytest.mark.parametrize("seed", range(20))
def test_random_storms_alike(ruleset: Callable[[str], RuleSet], seed: int) -> None:
    """Random storms give the same changes, final table and counters on both paths."""
    rules = ruleset(STORM_RULES)
    with fast_path(True) as folded:
        fast, _ = storm(rules, seed)
    with fast_path(False):
        full, _ = storm(rules, seed)
    assert fast == full
    assert folded[0] > 10  # the exact repeats of open rows took the fast path


T0 = 1_767_225_600.0
PROBLEM = {"node": "n1", "alertgroup": "Down", "severity": "clear", "labels": {"site": "a"}}
HELD = {"node": "n2", "alertgroup": "Lat", "severity": "major"}
ESCALATE = """
correlate:
  - {name: esc, kind: escalate, match: ['alertgroup="Lat"'], after: 1m, set: {severity: critical}}
"""
BY_ALERTNAME = """
correlate:
  - {name: thr, kind: threshold, match: ['alertname="Lat"'], group_by: [node], count: 2,
     window: 1m}
"""
BY_TALLY = """
correlate:
  - {name: thr, kind: threshold, match: ['alertgroup="Lat"', 'tally>=2'], count: 2, window: 1m}
"""
Step = tuple[float, str, Any]
# an event that carries exactly its row's fields, yet is more than a repeat
SEQUENCES: dict[str, tuple[str, list[Step]]] = {
    "a problem on a cleared row reopens it": (ESCALATE, [
        (T0, "event", PROBLEM),
        (T0 + 1, "event", {**PROBLEM, "type": "resolution"}),
        (T0 + 2, "event", PROBLEM),
        (T0 + 3, "clear", "n1:Down::"),
        (T0 + 4, "event", PROBLEM),
    ]),
    "a held severity is applied again over an operator's lower one": (ESCALATE, [
        (T0, "event", HELD),
        (T0 + 61, "tick", None),
        (T0 + 62, "severity", "n2:Lat::"),
        (T0 + 63, "event", HELD),
    ]),
    "a rule reading tally sees the row's": (BY_TALLY, [
        (T0, "event", HELD),
        (T0 + 1, "event", HELD),
        (T0 + 2, "event", HELD),
    ]),
    "a rule keyed on alertname sees the event's, not the row's": (BY_ALERTNAME, [
        (T0, "event", {**HELD, "labels": {"alertname": "Other"}}),
        (T0 + 1, "event", HELD),
        (T0 + 2, "event", HELD),
    ]),
}  # fmt: skip


@pytest.mark.parametrize("name", SEQUENCES)
def test_exact_repeats_that_are_more_alike(ruleset: Callable[[str], RuleSet], name: str) -> None:
    """Cleared or held rows, and rules that read what a row and its repeat differ in."""
    text, steps = SEQUENCES[name]
    rules = ruleset(text)

    def run() -> list[bytes]:
        engine = Engine(rules, snapshots=True)
        out: list[bytes] = []
        for now, what, arg in steps:
            if what == "event":
                changes = engine.process({**arg, "timestamp": now}, now)
            elif what == "tick":
                changes = engine.tick(now)
            else:
                changes = engine.operate(what, arg, "op", now, "major" * (what == "severity"))
            out.extend(orjson.dumps(change.to_dict()) for change in changes)
        return out

    with fast_path(True):
        fast = run()
    with fast_path(False):
        full = run()
    assert fast == full


def test_prometheus_resends_with_a_moving_end_fold_fast(ruleset: Callable[[str], RuleSet]) -> None:
    """Prometheus re-sends a firing alert with the same start and a later `endsAt` each
    time: each re-send is a repeat with a new expiry, folded fast, and the row then
    expires at the last `endsAt` as on the full path (tick past it: cleared alike)."""
    rules = ruleset(BY_ALERTNAME)
    alert = {"labels": {"alertname": "Lat", "instance": "db1:9100", "severity": "warning"},
             "annotations": {"summary": "slow"}, "startsAt": "2026-01-01T00:00:00Z"}  # fmt: skip

    def run() -> list[bytes]:
        engine = Engine(rules, snapshots=True)
        out: list[bytes] = []
        for i in range(6):
            now = T0 + 60 * i
            ends = {**alert, "endsAt": now + 240.0}  # four evaluation intervals ahead
            changes = engine.process(to_event(ends, now, 300.0), now)
            out.extend(orjson.dumps(change.to_dict()) for change in changes)
        out.extend(orjson.dumps(c.to_dict()) for c in engine.tick(T0 + 300 + 239))
        out.extend(orjson.dumps(c.to_dict()) for c in engine.tick(T0 + 300 + 241))
        return out

    fast, folded = alike(run)
    assert folded == 5
    assert b'"status":"cleared"' in fast[-2] + fast[-1]


def test_a_note_stamped_on_every_event_folds_fast_as_an_update(
    ruleset: Callable[[str], RuleSet],
) -> None:
    """An event that only changes an annotation's text (when it was sent) is a repeat
    whose fold updates the row: rules watching updates see it on both paths alike."""
    rules = ruleset(
        """
policies:
  - {name: seen, on: [update], actions: [{set: {labels.seen: "{{ annotations.sent }}"}}]}
"""
    )

    def run() -> list[bytes]:
        engine = Engine(rules, snapshots=True)
        out: list[bytes] = []
        for i in range(6):
            note = {"sent": str(i // 2)} if i < 5 else {"sent": 7}  # 7: converted, full path
            event = {**HELD, "annotations": note, "timestamp": T0 + i}
            out.extend(orjson.dumps(c.to_dict()) for c in engine.process(event, T0 + i))
        return out

    fast, folded = alike(run)
    assert folded == 4
    assert b'"seen":"2"' in b"".join(fast)


# rules a repeat hands its row in place of an occurrence (they read only what the two
# share): thresholds by a label and a pair whose alert reads nothing of its first (the
# one on `Lat` reads annotations, which they do not share; the last `alertname`, a label)
ROW_RULES = """
correlate:
  - {name: thr, kind: threshold, match: ['alertgroup="Down"'], group_by: [labels.site],
     count: 2, window: 5m}
  - {name: pr, kind: pair, first: ['alertgroup="JobStart"'], second: ['alertgroup="JobEnd"'],
     on: [node], within: 90s, alert: {summary: "{{ group.node }} late"}}
  - {name: lat, kind: threshold, match: ['alertgroup="Lat"', 'annotations.r="1"'], count: 2,
     window: 1m}
  - {name: named, kind: threshold, match: ['alertgroup="Site"', 'alertname="Site"'],
     group_by: [labels.site], count: 2, window: 1m}
"""


@pytest.mark.parametrize("seed", range(20))
def test_random_storms_alike_with_the_row_for_the_occurrence(
    ruleset: Callable[[str], RuleSet], seed: int
) -> None:
    """Rules that read only what a repeat shares with its row are handed the row itself
    (no occurrence made): the same changes, final table and counters as on the full path."""
    from correlator.correlate.base import Operator

    rules = ruleset(ROW_RULES)
    handed = [0]
    originals = {type(op): type(op).on_event for op in rules.build_operators(300.0)}

    def counting(on_event: Callable[..., None]) -> Callable[..., None]:
        def counted(op: Operator, occ: Any, row: Any, now: float, ctx: Any) -> None:
            handed[0] += occ is row and op.name != "lat"
            on_event(op, occ, row, now, ctx)

        return counted

    with pytest.MonkeyPatch.context() as patch:
        for kind, on_event in originals.items():
            patch.setattr(kind, "on_event", counting(on_event))
        with fast_path(True):
            fast, _ = storm(rules, seed)
        taken, handed[0] = handed[0], 0
        with fast_path(False):
            full, _ = storm(rules, seed)
    assert fast == full
    assert taken > handed[0]  # rows stood for repeats (a new row is its occurrence too)


ESCALATE_BY_TALLY = """
correlate:
  - {name: esc, kind: escalate, match: ['alertgroup="Lat"', 'tally>=4'], after: 1m,
     set: {severity: critical}}
"""


@pytest.mark.parametrize("text", [ESCALATE_BY_TALLY, ESCALATE])
def test_bare_repeats_told_to_no_one_leave_the_same_table(
    ruleset: Callable[[str], RuleSet], text: str
) -> None:
    """An engine that makes no changes tells bare repeats only to rules that watch
    updates and read tally: its table ends as one making changes leaves it."""
    rules = ruleset(text)

    def run(changes: bool) -> list[bytes]:
        engine = Engine(rules, changes=changes)
        assert engine.table.repeats_told is (changes or text == ESCALATE_BY_TALLY)
        for i in range(8):
            engine.process({**HELD, "timestamp": T0 + 20 * i}, T0 + 20 * i)
        engine.tick(T0 + 3600)
        return [orjson.dumps(row.to_dict()) for row in engine.table.rows.values()]

    assert run(changes=False) == run(changes=True)
