"""A batch's journal entries as one blob: every field comes back exactly."""

from __future__ import annotations

from correlator.store.base import ACTION, EVENT, RULES, TICK, Entry
from correlator.store.journal import decode, encode


def test_a_batch_round_trips_exactly() -> None:
    """Seqs, `now` values to the last bit, every kind, empty and binary data, in order."""
    entries = [
        Entry(7, 1_767_225_600.123456789, RULES, b"digest"),
        Entry(8, 1_767_225_600.123456789, TICK, b""),
        Entry(9, 0.1 + 0.2, EVENT, b'{"node": "n\\u00e9"}'),
        Entry(2**40, -1.0, ACTION, bytes(range(256))),
    ]
    assert decode(encode(entries)) == entries


def test_one_entry() -> None:
    """The smallest batch."""
    assert decode(encode([Entry(1, 5.0, EVENT, b"{}")])) == [Entry(1, 5.0, EVENT, b"{}")]
