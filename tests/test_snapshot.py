"""Snapshots restore exactly: stopping at any point and going on from a snapshot changes nothing.

The same random traffic as `test_invariants.py` (one rule of every kind,
late events, acknowledgements, operator actions, reloads) runs twice: once
uninterrupted, once snapshotted at a random point, written out as JSON and
read back into a fresh engine built with the rules in force then. From there
on both runs must publish the same changes, end with the same table, and
hold the same state (their own snapshots are equal).
"""

from __future__ import annotations

import dataclasses
import pickle
import random
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from test_invariants import EDITS, NODES, RULES, random_event

from correlator import snapshot
from correlator.engine import Engine
from correlator.errors import EventError
from correlator.model import Alert
from correlator.ruleset.loader import RuleSet
from correlator.snapshot import ALERT_FIELDS, Decoder, Encoder, SnapshotError
from correlator.testing import feed


@dataclass(frozen=True)
class Step:
    now: float
    rules: str | None = None  # a reload to this text
    action: tuple[str, str] | None = None  # (action, value) on a random row
    pick: float = 0.0  # which row, as a fraction of the sorted identifiers
    event: dict[str, Any] | None = None
    silence: dict[str, Any] | None = None  # a silence to add, or {"expire": id}


def traffic(rng: random.Random, steps: int) -> list[Step]:
    out: list[Step] = []
    now = 1000.0
    for _ in range(steps):
        now += rng.choice([0, 1, 5, 20, 60])
        if rng.random() < 0.03:
            text = RULES
            for old, new in EDITS:
                if rng.random() < 0.4:
                    text = text.replace(old, new)
            out.append(Step(now, rules=text))
        if rng.random() < 0.03:
            sid = f"s{rng.randrange(3)}"
            if rng.random() < 0.3:
                out.append(Step(now, silence={"expire": sid}))
            else:
                matcher = {"name": "node", "value": rng.choice(NODES), "isRegex": False}
                spec = {"id": sid, "matchers": [matcher], "createdBy": "op", "comment": "work",
                        "startsAt": now + rng.choice([0, 60]), "endsAt": now + 600}  # fmt: skip
                out.append(Step(now, silence=spec))
            continue
        if rng.random() < 0.05:
            action = rng.choice(
                [
                    ("ack", ""),
                    ("unack", ""),
                    ("assign", "bob"),
                    ("journal", "looked"),
                    ("clear", ""),
                    ("severity", "critical"),
                ]
            )
            out.append(Step(now, action=action, pick=rng.random()))
            continue
        event = random_event(rng, now)
        out.append(Step(now, event=event))
    for _ in range(40):  # then let timers run: expiries, windows, escalations, deletions
        now += 60
        out.append(Step(now))
    return out


def run(eng: Engine, steps: list[Step], load: Callable[[str], RuleSet]) -> list[dict[str, Any]]:
    changes: list[dict[str, Any]] = []
    for step in steps:
        if step.rules is not None:
            eng.load(load(step.rules))
        elif step.silence is not None:
            with suppress(KeyError):  # expiring one never made
                if "expire" in step.silence:
                    changes.extend(c.to_dict() for c in eng.expire_silence(
                        step.silence["expire"], step.now))  # fmt: skip
                else:
                    changes.extend(c.to_dict() for c in eng.silence(step.silence, step.now))
        elif step.action is not None:
            if eng.table.rows:
                rows = sorted(eng.table.rows)
                ident = rows[int(step.pick * len(rows))]
                out = eng.operate(step.action[0], ident, "op", step.now, step.action[1])
                changes.extend(c.to_dict() for c in out)
        elif step.event is not None:
            with suppress(EventError):  # late beyond max_lateness: dead-lettered
                changes.extend(c.to_dict() for c in feed(eng, step.event, now=step.now))
        else:
            changes.extend(c.to_dict() for c in eng.tick(step.now))
    return changes


def rules_at(steps: list[Step], index: int) -> str:
    """The rule text in force before step `index`."""
    text = RULES
    for step in steps[:index]:
        if step.rules is not None:
            text = step.rules
    return text


def canonical(plain: Any) -> Any:
    """A snapshot with its sets sorted: their order is history, which no rule reads."""
    if isinstance(plain, list):
        return [canonical(v) for v in plain]
    if isinstance(plain, dict):
        if "s" in plain:
            return {"s": sorted((canonical(v) for v in plain["s"]), key=orjson.dumps)}
        return {k: canonical(v) for k, v in plain.items()}
    return plain


def table(eng: Engine) -> list[dict[str, Any]]:
    return [row.to_dict() for row in eng.table.rows.values()]


def check_cut(load: Callable[[str], RuleSet], steps: list[Step], cut: int, reload: bool) -> None:
    """Snapshot before step `cut`, restore, go on: the same as never having stopped."""
    whole = Engine(load(RULES), snapshots=True)
    assert run(whole, steps[:cut], load)  # the cut is not at the very start
    taken = whole.snapshot()
    data = orjson.dumps(taken)
    newer = [Step(steps[cut].now, rules=RULES.replace("after: 3m", "after: 2m"))]
    tail = (newer if reload else []) + steps[cut:]
    expected = run(whole, tail, load)

    restored = Engine(load(rules_at(steps, cut)), snapshots=True)
    restored.restore(orjson.loads(data))
    assert canonical(restored.snapshot()) == canonical(taken)
    assert run(restored, tail, load) == expected
    assert table(restored) == table(whole)
    assert canonical(restored.snapshot()) == canonical(whole.snapshot())


@pytest.mark.parametrize("seed", range(40))
def test_restored_engine_goes_on_as_the_uninterrupted_one(
    ruleset: Callable[[str], RuleSet], seed: int
) -> None:
    rng = random.Random(seed)
    steps = traffic(rng, 250)
    cut = rng.randrange(1, len(steps) - 40)
    while steps[cut - 1].rules is not None:  # a load's rules start at the next entry
        cut -= 1
    # every third seed: the snapshot's rules are older than the ones loaded right after it
    check_cut(ruleset, steps, cut, reload=seed % 3 == 0)


@pytest.mark.parametrize("reload", [False, True])
def test_a_cut_where_every_kind_holds_state(
    ruleset: Callable[[str], RuleSet], reload: bool
) -> None:
    steps = traffic(random.Random(0), 250)
    eng = Engine(ruleset(RULES))
    kinds = {op.kind for op in eng.operators.values()}
    busy = []
    for step in steps:
        run(eng, [step], ruleset)
        busy.append({op.kind for op in eng.operators.values() if op.size()} == kinds)
    assert any(busy), "the traffic never engages every kind at once"
    check_cut(ruleset, steps, busy.index(True) + 1, reload)


def test_snapshot_refused_until_loaded_rules_started(ruleset: Callable[[str], RuleSet]) -> None:
    eng = Engine(ruleset(RULES))
    with pytest.raises(RuntimeError, match="started"):
        eng.snapshot()
    eng.tick(1.0)
    eng.snapshot()


def test_rules_the_snapshot_does_not_know_start_afresh(ruleset: Callable[[str], RuleSet]) -> None:
    eng = Engine(ruleset("{}"))
    eng.tick(1.0)
    eng.process({"node": "h1", "alertgroup": "HB", "timestamp": 1.0}, 1.0)
    bigger = Engine(ruleset(RULES))
    bigger.restore(orjson.loads(orjson.dumps(eng.snapshot())))
    assert [row.identifier for row in bigger.table.rows.values()] == ["h1:HB::"]
    assert len(bigger._unstarted) == len(bigger.operators)  # they start on the next input


class _Box:
    pass


def test_codec_keeps_identity_cycles_and_odd_values() -> None:
    from correlator.correlate.base import ParentLink

    shared: list[Any] = [1]
    row = Alert("a:b::", "a", "b", labels={"f": "inf"}, expire_at=float("inf"))
    row.note(1.0, "x", "y")
    value: dict[Any, Any] = {
        ("k", 1): shared,
        "again": shared,
        "row": row,
        "rows": [row, row],
        "floats": (float("-inf"), 1.5, float("nan")),
        "link": ParentLink("p", "r", "incident"),
        "set": {"x"},
        "empty": {},
    }
    value["self"] = value
    plain = orjson.loads(orjson.dumps(Encoder([ParentLink]).encode(value)))
    back = Decoder([ParentLink]).decode(plain)
    assert back["again"] is back[("k", 1)] and back["self"] is back
    assert back["rows"][0] is back["rows"][1] is back["row"]
    assert back["row"].labels == {"f": "inf"} and back["row"].expire_at == float("inf")
    assert back["row"].journal[0].text == "y"
    assert back["link"] == ParentLink("p", "r", "incident")
    assert back["floats"][0] == float("-inf") and back["floats"][2] != back["floats"][2]
    with pytest.raises(TypeError, match="_Box"):
        Encoder([]).encode({"x": _Box()})
    with pytest.raises(SnapshotError, match="unknown state type"):
        Decoder([]).decode(plain)  # ParentLink not given: it is not built


def _plain(value: Any) -> Any:
    """A comparable form of an attribute holding data; None for code (predicates, templates)."""
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple, set, frozenset, deque, dict)):
        try:
            return orjson.dumps(Encoder([]).encode(value))
        except TypeError:
            return None  # holds compiled rule parts, not learnt state
    return None


@pytest.mark.parametrize("seed", range(3))
def test_state_lists_everything_a_rule_learns(ruleset: Callable[[str], RuleSet], seed: int) -> None:
    """After every step, each attribute outside a rule's `state` is as the rule was built.

    So a snapshot, which saves only `state`, misses nothing: a new attribute that
    changes as the rule runs fails here until it is declared.
    """
    eng = Engine(ruleset(RULES))
    seen: set[tuple[str, str]] = set()
    for step in traffic(random.Random(seed), 250):
        run(eng, [step], ruleset)
        fresh = {op.name: op for op in eng.rules.build_operators(eng.max_lateness)}
        for name, op in eng.operators.items():
            for attr, value in vars(op).items():
                if attr in op.state:
                    seen.add((op.kind, attr))
                    continue
                assert _plain(value) == _plain(vars(fresh[name])[attr]), (name, attr)
    assert {kind for kind, _ in seen} >= {op.kind for op in eng.operators.values() if op.state}


def test_rows_written_before_a_field_existed_still_load() -> None:
    row = Alert("a:b::", "a", "b", tally=3, pinned={"severity": 5})
    plain = Encoder([]).encode(row)
    fields = list(ALERT_FIELDS)
    at = fields.index("pinned")
    older = {"a": plain["a"][:at] + plain["a"][at + 1 :]}  # as if `pinned` were new
    back = Decoder([], [f for f in fields if f != "pinned"]).decode(older)
    assert (back.tally, back.pinned, back.identifier) == (3, None, "a:b::")
    with pytest.raises(SnapshotError, match="does not know"):
        Decoder([], [*fields, "colour"])


def test_records_written_with_a_field_since_dropped_still_load() -> None:
    """A field a later version dropped is read past, its objects numbered all the same, so
    the references after it name the right objects; a derived field is never written."""

    def record(*fields: Any) -> type:
        cls = dataclasses.make_dataclass("Rec", fields, slots=True)
        cls.__module__ = __name__
        return cls

    old = record(("dropped", list), ("kept", list))
    new = record(("kept", list), ("count", "int | None", snapshot.derived(None)))
    kept = [2]
    plain = orjson.loads(orjson.dumps(Encoder([old]).encode({"r": old([1], kept), "again": kept})))
    back = Decoder([new]).decode(plain)
    assert back["r"].kept == [2] and back["again"] is back["r"].kept
    assert back["r"].count is None
    written = Encoder([new]).encode(new([3], 7))
    assert written["o"] == {"kept": [3]}


def test_stored_snapshots_hold_plain_data_only(ruleset: Callable[[str], RuleSet]) -> None:
    eng = Engine(ruleset(RULES))
    run(eng, traffic(random.Random(3), 100), ruleset)
    taken = eng.snapshot()
    assert snapshot.load(snapshot.dump(taken)) == orjson.loads(orjson.dumps(taken))
    with pytest.raises(SnapshotError, match="names no class"):
        snapshot.load(pickle.dumps(Alert("a:b::", "a", "b")))
    with pytest.raises(SnapshotError, match="not a snapshot"):
        snapshot.load(b"\x80\x05garbage")
