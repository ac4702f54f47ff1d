"""The pipeline: group commits to the store, acknowledgement only once durable, exact restore."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_snapshot import canonical

from correlator.engine import Engine
from correlator.pipeline import Pipeline
from correlator.ruleset.version import RuleVersion
from correlator.sinks.base import Record
from correlator.sinks.dead_letter import DeadLetter, DeadLetterFile
from correlator.sources.base import Received
from correlator.store.base import Batch
from correlator.store.sql import SqlStore, open_store

RULES = """
correlate:
  - name: site-outage
    kind: threshold
    match: ['alertgroup="NodeDown"']
    group_by: [labels.site]
    count: 3
    window: 5m
"""


class FakeTime:
    """Wall-clock stand-in: starts at a fixed epoch and moves only when told."""

    def __init__(self) -> None:
        self.now = 1_767_225_600.0

    def __call__(self) -> float:
        return self.now


def _event(n: int, at: float) -> bytes:
    kind = "resolution" if n % 7 == 3 else "problem"
    body = {"node": f"n{n % 5}", "alertgroup": "NodeDown", "type": kind, "timestamp": at,
            "labels": {"site": f"s{n % 2}"}, "severity": "major"}  # fmt: skip
    return orjson.dumps(body)


def _rules(tmp_path: Path, text: str) -> RuleVersion:
    """The rule set in `text`, as the daemon reads it from its rules directory."""
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    (folder / "rules.yaml").write_text(text)
    return RuleVersion.read(folder)


def _table(engine: Engine) -> list[dict[str, Any]]:
    return [row.to_dict() for row in sorted(engine.table.rows.values(), key=lambda r: r.serial)]


@contextlib.asynccontextmanager
async def _pipeline(
    rules: RuleVersion,
    store: SqlStore,
    clock: Callable[[], float],
    tmp_path: Path,
    **options: Any,
) -> AsyncIterator[tuple[Pipeline, list[Record]]]:
    published: list[Record] = []

    async def publish(records: list[Record]) -> None:
        published.extend(records)

    pipeline = Pipeline(
        rules,
        Engine,
        store,
        clock=clock,
        dead_letter=DeadLetterFile(tmp_path / "dead-letter.jsonl"),
        publish=publish,
        **options,
    )
    published.extend(await pipeline.restore())
    task = asyncio.create_task(pipeline.run())
    try:
        yield pipeline, published
    finally:
        pipeline.stop()  # graceful: what the engine did is committed before `run` returns
        await task


async def _store(tmp_path: Path) -> SqlStore:
    store = open_store(f"sqlite:///{tmp_path}/state.db")
    await store.open()
    return store


async def test_a_restart_rebuilds_the_table_exactly(tmp_path: Path) -> None:
    """Inputs committed in batches; a fresh engine restored from the journal has the same
    table, counters and change records as the one that ran (tallies exact)."""
    rules = _rules(tmp_path, RULES)
    clock = FakeTime()
    store = await _store(tmp_path)
    try:
        async with _pipeline(rules, store, clock, tmp_path) as (live, published):
            rng = random.Random(7)
            for n in range(300):
                clock.now += rng.choice((0.0, 0.5, 20.0))
                msg = Received(_event(n, clock.now), "kafka", ("kafka", "events", 0), n)
                await (await live.submit([msg]))
            live_table, live_records = _table(live.engine), list(published)
        assert live.offsets == {("kafka", "events", 0): 300}
        assert any(row["manager"] == "correlator" for row in live_table)  # the rule fired
        async with _pipeline(rules, store, clock, tmp_path) as (restored, replayed):
            assert _table(restored.engine) == live_table
            assert restored.offsets == {("kafka", "events", 0): 300}
            assert [r.payload for r in replayed] == [r.payload for r in live_records]
            assert [r.seq for r in replayed] == list(range(1, len(live_records) + 1))
    finally:
        await store.close()


async def test_bad_input_is_dead_lettered_with_its_reason_and_acknowledged(tmp_path: Path) -> None:
    """Not JSON, not an object, missing a required field: each a dead letter with the raw
    bytes; the batch is still durable (its offsets advance) and the good events are in."""
    clock = FakeTime()
    store = await _store(tmp_path)
    try:
        async with _pipeline(_rules(tmp_path, RULES), store, clock, tmp_path) as (pipeline, _):
            batch = [
                Received(b"{oops", "mqtt"),
                Received(b"[1, 2]", "mqtt"),
                Received(b'{"node": "n1"}', "mqtt"),
                Received(b"\xff\xfe", "mqtt"),
                Received(_event(1, clock.now), "mqtt"),
            ]
            rejected = await (await pipeline.submit(batch))
            assert len(pipeline.engine.table) == 1
    finally:
        await store.close()
    assert [index for index, _ in rejected] == [0, 1, 2, 3]
    assert rejected[2] == (2, "invalid: missing required field 'alertgroup'")
    letters = [
        orjson.loads(line) for line in (tmp_path / "dead-letter.jsonl").read_bytes().splitlines()
    ]
    assert [(d["reason"], d["source"]) for d in letters] == [
        ("not_json", "mqtt"),
        ("not_object", "mqtt"),
        ("invalid", "mqtt"),
        ("not_json", "mqtt"),
    ]
    assert letters[0]["raw"] == "{oops"
    assert letters[2]["message"] == "missing required field 'alertgroup'"
    assert letters[3]["raw_base64"] == "//4="


async def test_a_parsed_batch_is_one_entry_numbered_per_event_and_restores_exactly(
    tmp_path: Path,
) -> None:
    """HTTP bodies go in as parsed batches: one journal entry each, its `seq` that of its
    last event (snapshots still count events); items that are not objects or not alerts
    are dead-lettered by their index in the batch; a restart replays the batches, mixed
    with single messages, into the same table and records."""
    rules = _rules(tmp_path, RULES)
    clock = FakeTime()
    store = await _store(tmp_path)
    rng = random.Random(3)
    try:
        async with _pipeline(rules, store, clock, tmp_path) as (live, published):
            for n in range(0, 300, 10):
                clock.now += rng.choice((0.0, 0.5, 20.0))
                items: list[Any] = [orjson.loads(_event(m, clock.now)) for m in range(n, n + 10)]
                if n % 30 == 0:
                    await (await live.submit([Received(_event(n + 1000, clock.now), "kafka")]))
                if n == 50:
                    items[3], items[7] = [1, 2], {"node": "n1"}
                rejected = await (await live.submit([Received(b"", "http", events=items)]))
                if n == 50:
                    assert rejected == [
                        (3, "not_object: an event must be a JSON object"),
                        (7, "invalid: missing required field 'alertgroup'"),
                    ]
                else:
                    assert rejected == []
            live_table, live_records = _table(live.engine), list(published)
            assert live.counts[("http", "accepted")] == 298
            assert live.counts[("http", "dead_lettered")] == 2
        stored = await store.load("default")
        batches = [e for e in stored.entries if e.kind == "events"]
        assert len(batches) == 30
        counted = [len(orjson.loads(e.data)) if e.kind == "events" else 1 for e in stored.entries]
        assert stored.entries[-1].seq == sum(counted) == live.journal_tail  # every object counts
        assert [len(orjson.loads(e.data)) for e in batches][5] == 9  # [1, 2] is not journaled
        assert all(b.seq - a.seq >= 9 for a, b in itertools.pairwise(batches))
        async with _pipeline(rules, store, clock, tmp_path) as (restored, replayed):
            assert _table(restored.engine) == live_table
            assert [r.payload for r in replayed] == [r.payload for r in live_records]
    finally:
        await store.close()
    letters = [
        orjson.loads(line) for line in (tmp_path / "dead-letter.jsonl").read_bytes().splitlines()
    ]
    assert [(d["reason"], d["source"], d["raw"]) for d in letters] == [
        ("not_object", "http", "[1,2]"),
        ("invalid", "http", '{"node":"n1"}'),
    ]


class _FailingStore:
    """A store whose commits fail (a full disk): nothing may be acknowledged."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def commit(self, batch: Batch) -> None:
        raise OSError("database or disk is full")


async def test_a_parsed_batch_is_freed_after_its_answer_and_the_rows_keep_their_own(
    tmp_path: Path,
) -> None:
    """The pipeline empties a parsed batch and the body it came from once the answer is
    out (freeing them used to delay each HTTP answer); the rows keep their own maps."""
    clock = FakeTime()
    store = await _store(tmp_path)
    try:
        async with _pipeline(_rules(tmp_path, RULES), store, clock, tmp_path) as (live, _):
            events = [orjson.loads(_event(n, clock.now)) for n in range(6)]
            body = [{"from": n} for n in range(6)]
            labels = events[0]["labels"]
            answered = await live.submit([Received(b"", "http", events=events, parsed=body)])
            assert await answered == []
            assert len(events) == 6  # still there when the submitter reads its answer
            await asyncio.sleep(0)
            assert events == [] and body == []
            labels["site"] = "changed after the answer"
            rows = live.engine.table.rows.values()
            assert {r.labels["site"] for r in rows if r.alertgroup == "NodeDown"} == {"s0", "s1"}
    finally:
        await store.close()


def _bare(tmp_path: Path, store: Any, rules: RuleVersion) -> Pipeline:
    """A pipeline on `store` without sinks, not yet restored or running."""
    dead_letter = DeadLetterFile(tmp_path / "dl.jsonl")
    return Pipeline(rules, Engine, store, clock=FakeTime(), dead_letter=dead_letter)


async def test_a_failed_commit_acknowledges_nothing_and_stops_the_pipeline(tmp_path: Path) -> None:
    """The submitter's future fails with the store's error; the committer task ends with it.
    From then on nothing folds the queue: a submission, an operator's action and a reload
    are refused at once instead of waiting for good (and a shutdown with them)."""
    store = await _store(tmp_path)
    rules = _rules(tmp_path, RULES)
    try:
        pipeline = _bare(tmp_path, _FailingStore(store), rules)
        task = asyncio.create_task(pipeline.run())
        durable = await pipeline.submit([Received(_event(1, 1_767_225_600.0), "http")])
        with pytest.raises(OSError, match="disk is full"):
            await durable
        with pytest.raises(OSError, match="disk is full"):
            await task
        async with asyncio.timeout(2):
            later = await pipeline.submit([Received(_event(2, 1_767_225_600.0), "http")])
            with pytest.raises(ConnectionAbortedError):
                await later
            with pytest.raises(ConnectionAbortedError):
                await pipeline.act("ack", "n1:NodeDown::", "alice")
            with pytest.raises(ConnectionAbortedError):
                await pipeline.reload(rules)
    finally:
        await store.close()


class _FlakyDeadLetter(DeadLetterFile):
    """A dead-letter sink whose first writes fail (its broker restarting)."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures

    async def write(self, letters: list[DeadLetter]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("dead-letter broker away")
        await super().write(letters)


async def test_a_dead_letter_sink_away_holds_the_batch_and_loses_nothing(tmp_path: Path) -> None:
    """Bad input while the dead-letter sink fails: the batch waits (not acknowledged) and
    is written once the sink is back; the committer does not stop."""
    store = await _store(tmp_path)
    sink = _FlakyDeadLetter(tmp_path / "dl.jsonl", failures=2)
    pipeline = Pipeline(_rules(tmp_path, RULES), Engine, store, clock=FakeTime(), dead_letter=sink)
    await pipeline.restore()
    task = asyncio.create_task(pipeline.run())
    try:
        async with asyncio.timeout(5):
            bad = await pipeline.submit([Received(b"not json", "http")])
            ((index, reason),) = await bad
            assert (index, reason.split(":")[0]) == (0, "not_json")
            good = await pipeline.submit([Received(_event(1, 1_767_225_600.0), "http")])
            assert await good == []
        assert sink.failures == 0 and not task.done()
        (letter,) = (tmp_path / "dl.jsonl").read_bytes().splitlines()
        assert orjson.loads(letter)["raw"] == "not json"
    finally:
        pipeline.stop()
        await task
        await store.close()


async def test_a_failure_while_gathering_fails_what_was_taken(tmp_path: Path) -> None:
    """An error that is not the input's (a bug in a rule kind) ends the committer; the
    inputs it had taken into the batch are refused with it, not left waiting."""
    store = await _store(tmp_path)
    try:
        pipeline = _bare(tmp_path, store, _rules(tmp_path, RULES))
        await pipeline.restore()

        def broken(event: Any, now: float) -> Any:
            raise RuntimeError("a bug")

        pipeline.engine.process = broken  # type: ignore[method-assign]
        task = asyncio.create_task(pipeline.run())
        durable = await pipeline.submit([Received(_event(1, 1_767_225_600.0), "http")])
        async with asyncio.timeout(2):
            with pytest.raises(RuntimeError, match="a bug"):
                await durable
            with pytest.raises(RuntimeError, match="a bug"):
                await task
    finally:
        await store.close()


@pytest.mark.parametrize("refused", ["expire", "silence"])
async def test_a_refused_silence_changes_nothing_a_restart_would_not(
    tmp_path: Path, refused: str
) -> None:
    """After a reload, the new rules start at the next entry point. A silence refused there
    is not journaled, so it must not start them either: the rows a removed rule raised are
    cleared at the next input's time, live and after a restart alike."""
    store = await _store(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    before = _rules(tmp_path / "a", RULES)
    after = _rules(tmp_path / "b", RULES.replace("site-outage", "other-outage"))
    clock = FakeTime()
    try:
        async with _pipeline(before, store, clock, tmp_path) as (live, _):
            for n in range(6):
                clock.now += 1
                await (await live.submit([Received(_event(n * 2, clock.now), "http")]))
            assert any(r["manager"] == "correlator" for r in _table(live.engine))
            await live.reload(after)
            clock.now += 100
            if refused == "expire":
                assert await live.expire_silence("no-such-silence") is not None
            else:
                bad = {"id": "s1", "matchers": [], "startsAt": clock.now, "endsAt": clock.now - 1}
                assert await live.silence(bad) is not None
            clock.now += 100
            await (await live.submit([Received(_event(1, clock.now), "http")]))
            live_table = _table(live.engine)
        async with _pipeline(after, store, clock, tmp_path) as (restored, _):
            assert _table(restored.engine) == live_table
    finally:
        await store.close()


async def test_timers_fire_on_the_wall_clock_and_are_journaled(tmp_path: Path) -> None:
    """An expiry comes due without any new input; the tick is journaled, so a restart
    rebuilds the cleared row at the recorded time."""
    store = await _store(tmp_path)
    try:
        async with _pipeline(_rules(tmp_path, "{}"), store, time.time, tmp_path) as (live, _):
            body = {"node": "n1", "alertgroup": "Heartbeat", "expire_after": "200ms"}
            await (await live.submit([Received(orjson.dumps(body), "http")]))
            row = live.engine.table.get("n1:Heartbeat::")
            assert row is not None
            async with asyncio.timeout(5):
                while row.status != "cleared":  # noqa: ASYNC110 - the daemon's own timer
                    await asyncio.sleep(0.02)
            live_table = _table(live.engine)
        async with _pipeline(_rules(tmp_path, "{}"), store, time.time, tmp_path) as (restored, _):
            assert _table(restored.engine) == live_table
    finally:
        await store.close()


RULES_B = RULES.replace("count: 3", "count: 2")


async def test_inputs_replay_under_the_rules_that_processed_them(tmp_path: Path) -> None:
    """A reload mid-run, then a restart with yet other rules on disk: the restored table is
    the one that ran (each input replayed under its rules); the current rules then load."""
    clock = FakeTime()
    store = await _store(tmp_path)
    try:
        async with _pipeline(_rules(tmp_path, RULES), store, clock, tmp_path) as (live, _):
            for n in range(40):
                clock.now += 20.0 if n == 20 else 1.0
                if n == 20:  # from here on two NodeDown in 5m raise the outage
                    await live.reload(_rules(tmp_path, RULES_B))
                await (await live.submit([Received(_event(n, clock.now), "http")]))
            live_table = _table(live.engine)
        assert any(row["manager"] == "correlator" for row in live_table)
        current = _rules(tmp_path, RULES.replace("count: 3", "count: 9"))
        async with _pipeline(current, store, clock, tmp_path) as (restored, _):
            assert _table(restored.engine) == live_table
            assert restored.engine.operators["site-outage"].spec.count == 9
            await (await restored.submit([Received(_event(99, clock.now), "http")]))
        entries = (await store.load("default")).entries
        kinds = [e.kind for e in entries if e.kind == "rules"]
        assert kinds == ["rules", "rules", "rules"]  # A at the start, B by reload, then current
    finally:
        await store.close()


async def _stream(live: Pipeline, clock: FakeTime, events: range, seed: int = 7) -> None:
    rng = random.Random(seed)
    for n in events:
        clock.now += rng.choice((0.0, 0.5, 20.0))
        msg = Received(_event(n, clock.now), "kafka", ("kafka", "events", 0), n)
        await (await live.submit([msg]))


async def test_snapshots_bound_the_journal_and_restore_exactly(tmp_path: Path) -> None:
    """A snapshot every 40 entries: the journal after it stays short, and a restart from
    snapshot + journal has the table, offsets and record numbers of the run."""
    rules = _rules(tmp_path, RULES)
    clock = FakeTime()
    store = await _store(tmp_path)
    try:
        async with _pipeline(rules, store, clock, tmp_path, snapshot_entries=40) as (live, out):
            await _stream(live, clock, range(300))
            live_table = _table(live.engine)
            assert live.snapshots.saving is not None
            await live.snapshots.saving
        live_records = list(out)
        stored = await store.load("default")
        assert stored.snapshot is not None and stored.snapshot_seq >= 240
        assert [e.seq for e in stored.entries] == list(
            range(stored.snapshot_seq + 1, stored.snapshot_seq + 1 + len(stored.entries))
        )
        assert any(row["manager"] == "correlator" for row in live_table)  # the rule fired
        async with _pipeline(rules, store, clock, tmp_path) as (restored, published):
            replayed = list(published)
            assert _table(restored.engine) == live_table
            assert restored.offsets == {("kafka", "events", 0): 300}
            # only the journal after the snapshot is replayed, under the numbers it had
            assert replayed and live_records[-1] == replayed[-1]
            assert replayed == live_records[len(live_records) - len(replayed) :]
            await _stream(restored, clock, range(300, 310))
            assert restored.changes.change_seq > replayed[-1].seq
    finally:
        await store.close()


async def test_a_snapshot_is_saved_only_once_the_sinks_published_what_came_before(
    tmp_path: Path,
) -> None:
    """Records made before a snapshot cannot be made again: it waits for the sinks."""
    clock = FakeTime()
    store = await _store(tmp_path)
    release = asyncio.Event()
    waited: list[int] = []

    async def caught_up(seq: int) -> None:
        waited.append(seq)
        await release.wait()

    try:
        rules = _rules(tmp_path, RULES)
        options = {"snapshot_entries": 10, "caught_up": caught_up}
        async with _pipeline(rules, store, clock, tmp_path, **options) as (live, _):
            await _stream(live, clock, range(30))
            assert waited and (await store.load("default")).snapshot is None
            release.set()
            assert live.snapshots.saving is not None
            await live.snapshots.saving
            assert (await store.load("default")).snapshot_seq > 0
    finally:
        await store.close()


async def test_a_snapshot_under_older_rules_restores_then_reloads_the_current(
    tmp_path: Path,
) -> None:
    """Saved at shutdown under RULES, restarted with RULES_B on disk: the state is the one
    that ran, then RULES_B load as a reload would load them on the running engine."""
    clock = FakeTime()
    store = await _store(tmp_path)
    try:
        async with _pipeline(_rules(tmp_path, RULES), store, clock, tmp_path) as (live, _):
            await _stream(live, clock, range(100))
        await live.final_snapshot()
        stored = await store.load("default")
        assert stored.entries == [] and stored.snapshot_seq == live._seq
        live.engine.load(_rules(tmp_path, RULES_B).ruleset)  # what a reload would do
        live.engine.tick(clock.now)
        async with _pipeline(_rules(tmp_path, RULES_B), store, clock, tmp_path) as (restored, _):
            assert restored.engine.operators["site-outage"].spec.count == 2
            restored.engine.tick(clock.now)
            assert canonical(restored.engine.snapshot()) == canonical(live.engine.snapshot())
    finally:
        await store.close()
