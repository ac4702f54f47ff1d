"""The alert table: dedup, Netcool clearing, reopen, late events, expiry, deletion."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.errors import InvalidEvent, LateEvent
from correlator.model import JOURNAL_HEAD, JOURNAL_MAX, Alert


def ev(at: float, **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"node": "h1", "alertgroup": "Down", "timestamp": at}
    base.update(kw)
    return base


def kinds(changes: list[Any]) -> list[str]:
    return [c.kind for c in changes]


def test_duplicates_fold_into_one_row(engine: Callable[..., Engine]) -> None:
    """Same identifier: tally counts, first/last occurrence move, no second row."""
    eng = engine()
    assert kinds(eng.process(ev(10, severity="minor"), 10)) == ["alert.created"]
    assert kinds(eng.process(ev(20, severity="minor"), 20)) == ["alert.updated"]
    row = eng.table.get("h1:Down::")
    assert row is not None
    assert (row.tally, row.first_occurrence, row.last_occurrence) == (2, 10, 20)
    assert row.state_change == 10  # nothing but the tally changed
    eng.process(ev(30, severity="critical", summary="worse"), 30)
    assert (row.severity, row.summary, row.state_change) == (5, "worse", 30)
    assert len(eng.table) == 1
    assert eng.stats.dedup_hits == 2


def test_the_event_time_is_kept_even_at_epoch_zero(engine: Callable[..., Engine]) -> None:
    """A row's times are its event's, not the arrival time: timestamp 0 is a time too."""
    eng = engine()
    eng.process(ev(0), 30)
    row = eng.table.get("h1:Down::")
    assert row is not None
    assert (row.first_occurrence, row.last_occurrence, row.state_change) == (0, 0, 0)
    assert kinds(eng.process(ev(10, type="resolution"), 31)) == ["alert.cleared"]


def test_defaults_and_identifier(engine: Callable[..., Engine]) -> None:
    """Only node and alertgroup are required; the rest default as DESIGN.md §3 says."""
    eng = engine()
    eng.process(ev(1), 1)
    row = eng.table.get("h1:Down::")
    assert row is not None
    assert (row.severity, row.type, row.summary, row.status) == (1, "problem", "Down on h1", "open")
    assert row.serial == 1 and row.labels == {} and row.owner is None


def test_resolution_clears_and_old_resolution_does_not(engine: Callable[..., Engine]) -> None:
    """A resolution clears its problem unless it is older than the last occurrence."""
    eng = engine()
    eng.process(ev(100, severity="major"), 100)
    eng.process(ev(90, type="resolution"), 100)
    row = eng.table.get("h1:Down::")
    assert row is not None and row.status == "open"
    assert kinds(eng.process(ev(110, type="resolution"), 110)) == ["alert.cleared"]
    assert (row.status, row.severity, row.state_change) == ("cleared", 0, 110)
    assert any("resolution" in entry.text for entry in row.journal)


def test_resolution_without_problem_creates_nothing(engine: Callable[..., Engine]) -> None:
    """A resolution with no open problem creates no row and is counted."""
    eng = engine()
    assert eng.process(ev(1, type="resolution"), 1) == []
    assert len(eng.table) == 0
    assert eng.stats.resolutions_unmatched == 1


def test_info_is_never_cleared_by_resolution(engine: Callable[..., Engine]) -> None:
    """`info` rows ignore resolutions; they leave through expire_after."""
    eng = engine()
    eng.process(ev(1, type="info", expire_after="1m"), 1)
    eng.process(ev(2, type="resolution"), 2)
    row = eng.table.get("h1:Down::")
    assert row is not None and row.status == "open"
    assert kinds(eng.tick(61)) == ["alert.cleared"]
    assert row.status == "cleared"


def test_problem_reopens_cleared_row(engine: Callable[..., Engine]) -> None:
    """A new problem occurrence on a cleared row reopens it; tally goes on."""
    eng = engine()
    eng.process(ev(1, severity="major"), 1)
    eng.process(ev(2, type="resolution"), 2)
    eng.process(ev(3, severity="major"), 3)
    row = eng.table.get("h1:Down::")
    assert row is not None
    assert (row.status, row.tally, row.severity, row.state_change) == ("open", 2, 4, 3)
    assert row.journal[-1].text.startswith("reopened")


def test_late_occurrence_only_counts(engine: Callable[..., Engine]) -> None:
    """An occurrence older than last_occurrence counts in tally and changes nothing else."""
    eng = engine()
    eng.process(ev(100, severity="minor", summary="now"), 100)
    eng.process(ev(50, severity="critical", summary="then"), 100)
    row = eng.table.get("h1:Down::")
    assert row is not None
    assert (row.tally, row.severity, row.summary, row.last_occurrence) == (2, 3, "now", 100)


def test_expire_after_is_pushed_back_by_new_occurrences(engine: Callable[..., Engine]) -> None:
    """expire_at moves with each occurrence; the row clears when it is finally reached."""
    eng = engine()
    eng.process(ev(0, expire_after="60s"), 0)
    eng.process(ev(50, expire_after="60s"), 50)
    assert eng.tick(100) == []
    row = eng.table.get("h1:Down::")
    assert row is not None and row.expire_at == 110
    assert kinds(eng.tick(110)) == ["alert.cleared"]
    assert "expired after 1m" in row.journal[-1].text


def test_a_shorter_expire_after_brings_the_expiry_forward(engine: Callable[..., Engine]) -> None:
    """1h, then an occurrence saying 1m: the row expires at 70, not at 3600."""
    eng = engine()
    eng.process(ev(0, expire_after="1h"), 0)
    eng.process(ev(10, expire_after="1m"), 10)
    assert eng.tick(69) == []
    assert kinds(eng.tick(70)) == ["alert.cleared"]
    row = eng.table.get("h1:Down::")
    assert row is not None and "expired after 1m" in row.journal[-1].text
    assert kinds(eng.tick(3600)) == ["alert.deleted"]  # deleted at 190; the 1h timer is stale


def test_a_recreated_row_expires_on_its_own_schedule(engine: Callable[..., Engine]) -> None:
    """A deleted row's pending 1h timer does not delay its successor's 1m expiry."""
    eng = engine()
    eng.process(ev(0, expire_after="1h"), 0)
    eng.process(ev(10, type="resolution"), 10)
    eng.tick(200)  # deleted 120 s after it cleared
    assert eng.table.get("h1:Down::") is None
    eng.process(ev(300, expire_after="1m"), 300)
    assert kinds(eng.tick(360)) == ["alert.cleared"]


def test_a_late_resolution_gets_the_full_grace(engine: Callable[..., Engine]) -> None:
    """Resolved at 10 but delivered at 290: deleted 120 s after it cleared at 290, not at once."""
    eng = engine()
    eng.process(ev(0), 0)
    eng.process(ev(10, type="resolution"), 290)
    assert eng.tick(409) == []
    assert kinds(eng.tick(410)) == ["alert.deleted"]


def test_cleared_rows_are_deleted_after_grace(engine: Callable[..., Engine]) -> None:
    """Cleared rows go away delete_cleared_after (120 s) later, unless they reopen."""
    eng = engine()
    eng.process(ev(0), 0)
    eng.process(ev(10, type="resolution"), 10)
    assert eng.tick(129) == []
    assert kinds(eng.tick(130)) == ["alert.deleted"]
    assert len(eng.table) == 0
    eng.process(ev(200), 200)
    eng.process(ev(210, type="resolution"), 210)
    eng.process(ev(300), 300)  # reopened before the grace period ends
    assert eng.tick(1000) == []
    assert len(eng.table) == 1


def test_tick_does_nothing_when_nothing_is_due(engine: Callable[..., Engine]) -> None:
    """tick with no due timer returns no change (and costs one comparison)."""
    eng = engine()
    eng.process(ev(0, expire_after="1h"), 0)
    assert eng.tick(10) == []
    assert eng.next_timer() == 3600


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"alertgroup": "Down"}, "missing required field 'node'"),
        ({"node": "h1"}, "missing required field 'alertgroup'"),
        ({"node": "h1", "alertgroup": "D", "severity": "banana"}, "unknown severity 'banana'"),
        ({"node": "h1", "alertgroup": "D", "severity": 9}, "outside 0-5"),
        ({"node": "h1", "alertgroup": "D", "type": "bogus"}, "field 'type'"),
        ({"node": ["h1"], "alertgroup": "D"}, "must be a string"),
        ({"node": "h1", "alertgroup": "D", "labels": "x"}, "must be a map"),
        ({"node": "h1", "alertgroup": "D", "labels": {"a": {"b": 1}}}, "labels.a must be a string"),
        ({"node": "h1", "alertgroup": "D", "timestamp": "yesterday"}, "not a timestamp"),
        ({"node": "h1", "alertgroup": "D", "timestamp": "nan"}, "not a timestamp"),
        ({"node": "h1", "alertgroup": "D", "timestamp": float("nan")}, "between 1970 and 9999"),
        ({"node": "h1", "alertgroup": "D", "timestamp": float("inf")}, "between 1970 and 9999"),
        ({"node": "h1", "alertgroup": "D", "timestamp": 1767225600000}, "epoch milliseconds"),
        ({"node": "h1", "alertgroup": "D", "timestamp": -1}, "between 1970 and 9999"),
        ({"node": "h1", "alertgroup": "D", "expire_after": float("inf")}, "finite number"),
    ],
)
def test_invalid_events_are_rejected_with_reason(
    engine: Callable[..., Engine], event: dict[str, Any], reason: str
) -> None:
    """Events that cannot become alerts raise InvalidEvent naming the problem."""
    eng = engine()
    with pytest.raises(InvalidEvent, match=reason):
        eng.process(event, 0)
    assert eng.stats.dead_lettered["invalid"] == 1
    assert len(eng.table) == 0


def test_late_events_are_dead_lettered(engine: Callable[..., Engine]) -> None:
    """Older than the newest event minus max_lateness (5 m) → LateEvent."""
    eng = engine()
    eng.process(ev(1000), 1000)
    eng.process(ev(701, node="h2"), 1000)  # within 5 minutes: accepted
    with pytest.raises(LateEvent):
        eng.process(ev(699, node="h3"), 1000)
    assert eng.stats.dead_lettered["late"] == 1
    assert eng.table.get("h3:Down::") is None


def test_acknowledge(engine: Callable[..., Engine]) -> None:
    """Acknowledging sets status and owner and notes it in the journal."""
    eng = engine()
    eng.process(ev(0), 0)
    assert kinds(eng.acknowledge("h1:Down::", "alice", 5)) == ["alert.updated"]
    row = eng.table.get("h1:Down::")
    assert row is not None
    assert (row.status, row.owner, row.journal[-1].who) == ("acknowledged", "alice", "alice")


def test_info_row_reopens_after_expiry(engine: Callable[..., Engine]) -> None:
    """An info row that expired is reopened by its next occurrence, like a problem."""
    eng = engine()
    eng.process(ev(0, type="info", expire_after="60s"), 0)
    eng.tick(60)
    eng.process(ev(100, type="info", expire_after="60s", severity="minor"), 100)
    row = eng.table.get("h1:Down::")
    assert row is not None and (row.status, row.severity, row.expire_at) == ("open", 3, 160)


def test_cleared_row_touched_later_is_still_deleted(engine: Callable[..., Engine]) -> None:
    """A rule's note on a cleared row restarts the grace period; the row still goes."""
    eng = engine()
    eng.process(ev(0), 0)
    eng.process(ev(10, type="resolution"), 10)
    row = eng.table.get("h1:Down::")
    assert row is not None
    eng.modify(row, 50, "some-rule", "note on a cleared row")
    assert [c.kind for c in eng.tick(130)] == ["alert.updated"]  # the note, nothing else
    assert [c.kind for c in eng.tick(170)] == ["alert.deleted"]


def test_pinned_values_hold_against_occurrences_until_a_reopen(
    engine: Callable[..., Engine],
) -> None:
    """Pinned values (escalate) fold into every occurrence; a cleared row reopens without them.

    A pinned severity is a floor, pinned summary/labels/annotations replace the
    occurrence's; an occurrence that only repeats pinned values is a bare repeat.
    """
    eng = engine()
    eng.process(ev(0, severity="minor", labels={"p": "P3"}), 0)
    row = eng.table.get("h1:Down::")
    assert row is not None
    row.severity, row.summary, row.labels["p"], row.annotations["to"] = 4, "held", "P1", "noc"
    row.pinned = {"severity": 4, "summary": "held", "labels.p": "P1", "annotations.to": "noc"}
    eng.process(ev(10, severity="minor", labels={"p": "P3"}), 10)
    assert (row.severity, row.summary, row.labels, row.annotations) == (
        4,
        "held",
        {"p": "P1"},
        {"to": "noc"},
    )
    assert row.tally == 2 and row.state_change == 0  # nothing changed: a bare repeat
    eng.process(ev(20, severity="critical"), 20)
    assert (row.severity, row.summary) == (5, "held")  # a higher severity still wins
    eng.process(ev(30, type="resolution"), 30)
    eng.process(ev(40, severity="minor", labels={"p": "P3"}), 40)
    reopened = eng.table.get("h1:Down::")
    assert reopened is row and reopened.pinned is None
    assert (row.status, row.severity, row.labels["p"]) == ("open", 3, "P3")


def test_journal_keeps_its_first_and_last_notes() -> None:
    """A row noted for weeks stays bounded: the head, a marker counting the gap, the newest notes."""
    row = Alert(identifier="x", node="n", alertgroup="g")
    for i in range(JOURNAL_MAX + 25):
        row.note(float(i), "rule", f"note {i}")
        assert len(row.journal) <= JOURNAL_MAX
    texts = [entry.text for entry in row.journal]
    assert len(texts) == JOURNAL_MAX
    assert texts[:JOURNAL_HEAD] == [f"note {i}" for i in range(JOURNAL_HEAD)]
    tail = JOURNAL_MAX - JOURNAL_HEAD - 1
    assert texts[JOURNAL_HEAD + 1 :] == [
        f"note {i}" for i in range(JOURNAL_MAX + 25 - tail, JOURNAL_MAX + 25)
    ]
    dropped = JOURNAL_MAX + 25 - JOURNAL_HEAD - tail
    assert texts[JOURNAL_HEAD] == (
        f"{dropped} older notes dropped (a row keeps its first {JOURNAL_HEAD} and last {tail})"
    )
    assert row.journal[JOURNAL_HEAD].at == float(JOURNAL_HEAD + dropped - 1)  # the last one dropped
    assert row.to_dict()["journal"][JOURNAL_HEAD]["who"] == "correlator"


def test_new_rows_share_equal_texts_through_a_bounded_table(engine: Callable[..., Engine]) -> None:
    """Rows that carry equal texts hold one copy (memory per row); the texts kept for
    sharing stay bounded however many distinct ones arrive, and sharing goes on after."""
    from correlator.table import table as table_module

    eng = engine()

    def row(n: int, site: str) -> Alert:
        event = ev(float(n), node=f"n{n}", summary="".join(["link ", "down"]),
                   labels={"site": "".join(["ams", site]), "host": f"n{n}"})  # fmt: skip
        eng.process(event, float(n))
        found = eng.table.get(f"n{n}:Down::")
        assert found is not None
        return found

    first, second = row(1, "1"), row(2, "1")
    assert second.summary is first.summary and second.labels["site"] is first.labels["site"]
    assert second.alertgroup is first.alertgroup
    for n in range(3, 3 + table_module.SHARED_TEXTS):  # distinct texts: the table fills
        row(n, "1")
        assert len(eng.table._texts) <= table_module.SHARED_TEXTS
    late, later = row(10_000, "2"), row(10_001, "2")
    assert later.labels["site"] is late.labels["site"] and later.summary is late.summary
