"""Sources are keyed in the store by name: a named source keeps its offsets wherever it is listed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
from structlog.testing import capture_logs
from support.daemon import Running

from correlator.app import App


def _lines(node: str, n: int) -> bytes:
    return b"".join(orjson.dumps({"node": node, "alertgroup": "Down"}) + b"\n" for _ in range(n))


async def _tallies(app: App, want: dict[str, int]) -> None:
    async with asyncio.timeout(10):
        while {n: getattr(app.engine.table.get(f"{n}:Down::"), "tally", 0) for n in want} != want:  # noqa: ASYNC110 - the file is polled
            await asyncio.sleep(0.02)


async def test_named_sources_keep_their_offsets_when_the_list_is_reordered(
    daemon: Running, tmp_path: Path
) -> None:
    """Reordered (and with a source added before them), each file resumes at its own stored
    position: nothing is read twice, nothing skipped."""
    syslog, traps, extra = tmp_path / "syslog.jsonl", tmp_path / "traps.jsonl", tmp_path / "x.jsonl"
    syslog.write_bytes(_lines("a", 2))
    traps.write_bytes(_lines("b", 3))
    extra.write_bytes(b"")
    named = [{"name": "syslog", "file": {"path": str(syslog)}},
             {"name": "traps", "file": {"path": str(traps)}}]  # fmt: skip
    async with daemon(sources=named) as (app, _):
        await _tallies(app, {"a": 2, "b": 3})
        assert {s.name for s in app.sources} == {"syslog", "traps"}
    with syslog.open("ab") as out:
        out.write(_lines("a", 1))
    reordered = [{"file": {"path": str(extra)}}, *reversed(named)]
    async with daemon(sources=reordered) as (app, _):
        await _tallies(app, {"a": 3, "b": 3})
        await asyncio.sleep(0.2)  # a second read of either file would show by now
        await _tallies(app, {"a": 3, "b": 3})


async def test_state_of_a_source_or_sink_no_longer_configured_is_warned_of(
    daemon: Running, tmp_path: Path
) -> None:
    """A renamed source would start afresh: the log says which stored names nothing uses."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(_lines("a", 1))
    async with daemon(sources=[{"name": "syslog", "file": {"path": str(path)}}]) as (app, _):
        await _tallies(app, {"a": 1})
    with capture_logs() as logs:
        async with daemon(sources=[{"name": "syslog-eu", "file": {"path": str(path)}}]):
            pass
    (warned,) = [
        e for e in logs if e["event"] == "stored state for sources or sinks not configured"
    ]
    assert (warned["sources"], warned["sinks"]) == (["syslog"], [])
