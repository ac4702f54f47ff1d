"""The publisher's coalescing of repeated updates within a committed batch."""

from __future__ import annotations

from correlator.model import CLEARED_KIND, CREATED, DELETED, UPDATED
from correlator.sinks.base import Record
from correlator.sinks.publisher import coalesce


def _batch(*steps: tuple[str, str]) -> list[Record]:
    return [Record(seq, ident, kind, b"") for seq, (ident, kind) in enumerate(steps, start=1)]


def test_only_the_last_of_consecutive_updates_of_an_alert_is_kept() -> None:
    """created/cleared/deleted are never dropped; an update survives when something other
    than an update of the same alert follows it; order is kept."""
    batch = _batch(
        ("a", CREATED), ("a", UPDATED), ("a", UPDATED), ("b", UPDATED),
        ("a", CLEARED_KIND), ("a", UPDATED), ("b", UPDATED), ("a", UPDATED), ("c", DELETED),
    )  # fmt: skip
    assert [r.seq for r in coalesce(batch)] == [1, 3, 5, 7, 8, 9]


def test_a_batch_without_repeats_is_unchanged() -> None:
    batch = _batch(("a", CREATED), ("b", UPDATED), ("a", UPDATED), ("b", CLEARED_KIND))
    assert coalesce(batch) == batch
