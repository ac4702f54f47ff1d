"""The dead-letter file: every input that could not become an alert, with the reason.

One JSON line per input: when, from which source, why, and the raw bytes
(as text when they are UTF-8, else base64). Lines are written and fsynced
before the batch that rejected them is committed, so an input acknowledged
to its source is never lost (after a crash one may be written twice).
"""

from __future__ import annotations

import asyncio
import base64
import os
from dataclasses import dataclass
from pathlib import Path

import orjson


@dataclass(frozen=True, slots=True)
class DeadLetter:
    at: float
    source: str
    reason: str  # the error's `reason` (metric label): invalid, late, not_json, ...
    message: str
    raw: bytes

    def to_json(self) -> bytes:
        try:
            raw: dict[str, str] = {"raw": self.raw.decode("utf-8")}
        except UnicodeDecodeError:
            raw = {"raw_base64": base64.b64encode(self.raw).decode()}
        body = {"at": self.at, "source": self.source, "reason": self.reason}
        return orjson.dumps({**body, "message": self.message, **raw})


class DeadLetterFile:
    """Appends dead letters to a JSON-lines file (its folder is created)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def write(self, letters: list[DeadLetter]) -> None:
        if letters:
            data = b"".join(letter.to_json() + b"\n" for letter in letters)
            await asyncio.to_thread(self._append, data)

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
