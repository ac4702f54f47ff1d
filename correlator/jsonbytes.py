"""JSON bytes to keep: orjson's output copied to its own size.

orjson (3.13 here) hands back a bytes object that keeps its whole write buffer,
4 KiB, however short the JSON: a 510-byte change record held 4,097 bytes. The
pipeline keeps every record of a batch until the sinks have published it, and
every journal entry until its commit: under `bench/e2e.py` that made the
daemon's heap grow to 1.5 GB for a 20,000-row table, and faulting those pages
in took about a sixth of its CPU time. A copy of the exact size costs less than
the allocation it saves (the next `dumps` reuses the buffer freed at once).
"""

from __future__ import annotations

from typing import Any

import orjson


def json_bytes(value: Any) -> bytes:
    """`orjson.dumps(value)` in an allocation of its own length, for bytes that are kept."""
    return memoryview(orjson.dumps(value)).tobytes()
