"""Scopes: what goes to every engine (a reload, a silence) meets scopes opening and closing."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest
from test_pipeline import RULES, FakeTime, _event, _rules, _store

from correlator.engine import Engine
from correlator.pipeline import Pipeline
from correlator.ruleset.version import RuleVersion
from correlator.scopes import Scopes
from correlator.sinks.dead_letter import DeadLetterFile
from correlator.sources.base import Received
from correlator.store.sql import SqlStore

OTHER_RULES = RULES.replace("count: 3", "count: 4")


def _version(folder: Path, text: str) -> RuleVersion:
    folder.mkdir()
    return _rules(folder, text)


def _scopes(
    store: SqlStore, tmp_path: Path, made: list[RuleVersion], now: list[RuleVersion]
) -> Scopes:
    """Pipelines are made under `made[0]`; the rules in force are `now[0]`."""

    def make(scope: str) -> Pipeline:
        return Pipeline(made[0], Engine, store, scope=scope, clock=FakeTime(),
                        dead_letter=DeadLetterFile(tmp_path / "dl.jsonl"))  # fmt: skip

    return Scopes(make, None, timeout=5.0, rules=lambda: now[0])


async def test_a_scope_restored_while_a_reload_went_by_runs_the_new_rules(tmp_path: Path) -> None:
    """A reload swaps the rules of the scopes open at the time; one still restoring was
    made under the old rules, and takes the new ones before its first input."""
    old, new = _version(tmp_path / "a", RULES), _version(tmp_path / "b", OTHER_RULES)
    store = await _store(tmp_path)
    scopes = _scopes(store, tmp_path, [old], [new])
    try:
        pipeline = await scopes.open("kafka-0:t:0")
        assert pipeline.rules.digest == new.digest
        stored = await store.load("kafka-0:t:0")
        assert {e.kind for e in stored.entries} == {"rules"}  # journaled before any input
        assert stored.entries[-1].data.decode() == new.digest
    finally:
        await scopes.close_all()
        await store.close()


async def test_what_goes_to_every_scope_skips_one_closed_meanwhile(tmp_path: Path) -> None:
    """A partition revoked between the listing and the call is skipped; a scope still
    open that refuses (shutting down) raises."""
    rules = _version(tmp_path / "a", RULES)
    store = await _store(tmp_path)
    scopes = _scopes(store, tmp_path, [rules], [rules])
    try:
        revoked = await scopes.open("kafka-0:t:0")
        kept = await scopes.open("kafka-0:t:1")
        await scopes.close("kafka-0:t:0")
        other = _version(tmp_path / "b", OTHER_RULES)
        async with asyncio.timeout(2):
            with scopes.unless_closed(revoked):
                await revoked.reload(other)
            assert revoked.rules.digest == rules.digest
            await scopes.close_all()  # shutdown: the scopes stay listed, their committers end
            with pytest.raises(ConnectionAbortedError), scopes.unless_closed(kept):
                await kept.reload(other)
    finally:
        await scopes.close_all()
        await store.close()


async def test_a_closed_scope_is_collected(tmp_path: Path) -> None:
    """A revoked partition's engine is freed: restoring a scope freezes nothing (frozen
    objects are never collected, and every rebalance would leak an engine)."""
    rules = _version(tmp_path / "a", RULES)
    store = await _store(tmp_path)
    scopes = _scopes(store, tmp_path, [rules], [rules])
    try:
        pipeline = await scopes.open("kafka-0:t:0")
        for n in range(20):
            await (await pipeline.submit([Received(_event(n, 1_767_225_600.0), "kafka-0")]))
        engine = weakref.ref(pipeline.engine)
        await scopes.close("kafka-0:t:0")
        del pipeline
        gc.collect()
        assert engine() is None
    finally:
        await scopes.close_all()
        await store.close()


async def test_a_fetch_from_before_a_rebalance_leaves_a_revoked_partition_alone(
    tmp_path: Path,
) -> None:
    """Messages fetched before the group took a partition away are not folded: no engine
    is reopened for it (its new owner reads them from the offset it stored); given back,
    it opens again."""
    rules = _version(tmp_path / "a", RULES)
    store = await _store(tmp_path)
    scopes = _scopes(store, tmp_path, [rules], [rules])
    key = ("kafka-0", "t", 0)
    try:
        assert await scopes.assign(key) is None
        await scopes.revoke(key)
        stale = Received(_event(1, 1_767_225_600.0), "kafka-0", key, 0)
        async with asyncio.timeout(2):
            assert await (await scopes.submit_partitioned([stale])) == []
        assert "kafka-0:t:0" not in scopes.pipelines
        await scopes.assign(key)
        assert await (await scopes.submit_partitioned([stale])) == []
        assert len(scopes.pipelines["kafka-0:t:0"].engine.table) == 1
    finally:
        await scopes.close_all()
        await store.close()
