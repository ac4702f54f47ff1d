"""File source: JSON lines from a file (followed as it grows) or standard input (`-`).

A file's read position is an offset like Kafka's, stored with the journal
batch that holds its lines, so a restart neither skips nor repeats a line.
Standard input has no position: it is read to its end, then the source is
done (the daemon goes on with its other sources).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from typing import BinaryIO

from correlator.config import FileSource as FileConfig
from correlator.sources.base import Received, SourceBase, Submit
from correlator.store.base import OffsetKey


class FileSource(SourceBase):
    def __init__(
        self, name: str, config: FileConfig, *, max_batch: int = 5000, poll: float = 1.0
    ) -> None:
        super().__init__(name)
        self.config = config
        self.max_batch = max_batch
        self.poll = poll

    async def run(self, submit: Submit, offsets: Mapping[OffsetKey, int]) -> None:
        path = self.config.path
        if path == "-":
            self._connected = True
            await self._read(sys.stdin.buffer, submit, None, follow=False)
            return
        key: OffsetKey = (self.name, path, 0)
        with open(path, "rb") as stream:  # noqa: ASYNC230 - reads go through to_thread below
            stream.seek(offsets.get(key, 0))
            self._connected = True
            await self._read(stream, submit, key, follow=True)

    async def _read(
        self, stream: BinaryIO, submit: Submit, key: OffsetKey | None, *, follow: bool
    ) -> None:
        pending = b""  # a last line without its newline yet (the writer is mid-line)
        while True:
            lines = await asyncio.to_thread(_read_lines, stream, self.max_batch)
            if not lines:
                if not follow:
                    return
                await asyncio.sleep(self.poll)
                continue
            position = stream.tell() if key is not None else 0
            if pending:
                lines[0] = pending + lines[0]
                pending = b""
            if not lines[-1].endswith(b"\n"):
                pending = lines.pop()
                position -= len(pending)
            batch = [Received(line, self.name, key, position - 1) for line in lines if line.strip()]
            if batch:
                await (await submit(batch))


def _read_lines(stream: BinaryIO, limit: int) -> list[bytes]:
    lines: list[bytes] = []
    while len(lines) < limit:
        line = stream.readline()
        if not line:
            break
        lines.append(line)
    return lines
