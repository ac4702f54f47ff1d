"""JSON bytes that the pipeline keeps take their own length in memory, not orjson's buffer."""

from __future__ import annotations

import tracemalloc

import orjson

from correlator.jsonbytes import json_bytes


def test_json_bytes_are_orjson_output() -> None:
    value = {"at": 1.5, "kind": "alert.updated", "alert": {"labels": {"a": "é"}, "tally": 3}}
    assert json_bytes(value) == orjson.dumps(value)


def test_kept_json_bytes_take_about_their_length() -> None:
    """A thousand 500-byte records held at once cost about 500 KB, not one buffer each."""
    value = {"summary": "x" * 480}
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [json_bytes(value) for _ in range(1000)]
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(kept[0]) == 494
    assert used < 1000 * 700
