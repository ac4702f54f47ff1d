"""The file source: JSON lines followed as the file grows, resumed at the stored position."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from support.committer import Committer

from correlator.config import FileSource as FileConfig
from correlator.sources.file import FileSource
from correlator.store.base import OffsetKey


@contextlib.asynccontextmanager
async def _following(
    path: Path, pipeline: Committer, offsets: Mapping[OffsetKey, int]
) -> AsyncIterator[FileSource]:
    source = FileSource("file", FileConfig(path=str(path)), poll=0.02)
    task = asyncio.create_task(source.run(pipeline.submit, offsets))
    try:
        yield source
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_lines_are_read_as_the_file_grows_and_resumed_after_a_restart(
    tmp_path: Path,
) -> None:
    """Blank lines are skipped; a line still being written waits for its newline; a restart
    starts at the stored position (nothing skipped, nothing repeated)."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"n": 1}\n\n{"n": 2}\n{"n": ')
    first = Committer()
    async with _following(path, first, {}):
        await first.wait_for(2)
        with path.open("ab") as out:
            out.write(b'3}\n{"n": 4}\n')
        await first.wait_for(4)
    assert [m.value.strip() for m in first.received] == [
        b'{"n": 1}', b'{"n": 2}', b'{"n": 3}', b'{"n": 4}'
    ]  # fmt: skip
    assert first.offsets == {("file", str(path), 0): path.stat().st_size}
    with path.open("ab") as out:
        out.write(b'{"n": 5}\n')
    second = Committer()
    async with _following(path, second, first.offsets):
        await second.wait_for(1)
        await asyncio.sleep(0.1)
    assert [m.value.strip() for m in second.received] == [b'{"n": 5}']


async def test_standard_input_is_read_to_its_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """`-` reads stdin until EOF, then the source is done (no position to store)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"n": 1}\n\n{"n": 2}\n')))
    pipeline = Committer()
    source = FileSource("stdin", FileConfig(path="-"))
    await asyncio.wait_for(source.run(pipeline.submit, {}), 5)
    assert [m.value.strip() for m in pipeline.received] == [b'{"n": 1}', b'{"n": 2}']
    assert pipeline.offsets == {}
