"""The nouns of the pipeline: severities, the alert row, changes and dead letters.

The hot path uses these slotted classes, never pydantic models: an alert row is
created once per identifier and then mutated in place by deduplication.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

SEVERITY_NAMES: Final = ("clear", "indeterminate", "warning", "minor", "major", "critical")
SEVERITY_BY_NAME: Final = {name: level for level, name in enumerate(SEVERITY_NAMES)}

PROBLEM: Final = "problem"
RESOLUTION: Final = "resolution"
INFO: Final = "info"
TYPES: Final = frozenset((PROBLEM, RESOLUTION, INFO))

OPEN: Final = "open"
ACKNOWLEDGED: Final = "acknowledged"
CLEARED: Final = "cleared"

# Notes kept per row: the first ones say why it exists and what rules did to it,
# the last ones what is happening now; a row that flaps for weeks stays bounded.
JOURNAL_HEAD: Final = 10
JOURNAL_MAX: Final = 50
# A rule's note is often the same text on many rows (an inhibition names its source, a
# maintenance its window): the texts of recent notes are kept for the next ones to share,
# one copy in memory each. Bounded: cleared when full (a storm's notes are mostly its own).
NOTE_TEXTS: Final = 4096
_note_texts: dict[str, str] = {}


# Change kinds, exactly as `correlator replay` prints them.
CREATED: Final = "alert.created"
UPDATED: Final = "alert.updated"
CLEARED_KIND: Final = "alert.cleared"
DELETED: Final = "alert.deleted"
SUPPRESSED: Final = "alert.suppressed"
UNSUPPRESSED: Final = "alert.unsuppressed"
INCIDENT_OPENED: Final = "incident.opened"
INCIDENT_UPDATED: Final = "incident.updated"
INCIDENT_CLOSED: Final = "incident.closed"
NOTIFICATION: Final = "notification"


# Prometheus's usual words, accepted on input (a row keeps the level, shown by its name)
SEVERITY_ALIASES: Final = {"info": 1, "error": 4}
_SEVERITY_WORDS: Final = {**SEVERITY_BY_NAME, **SEVERITY_ALIASES}

_SEVERITY_FAST: Final[dict[object, int]] = {level: level for level in range(6)}
for _name, _level in _SEVERITY_WORDS.items():
    for _key in (str(_level), _name, _name.capitalize(), _name.upper()):
        _SEVERITY_FAST[_key] = _level
# the usual spellings of a severity given as text: one dict probe on the hot path
SEVERITY_OF_NAME: Final[dict[str, int]] = {
    k: v for k, v in _SEVERITY_FAST.items() if isinstance(k, str)
}


def parse_severity(value: object) -> int:
    """Accept 0-5, a Netcool severity name, `info` or `error`; raise ValueError otherwise."""
    if type(value) is not bool:  # True == 1 would otherwise hit the table
        try:
            return _SEVERITY_FAST[value]
        except (KeyError, TypeError):
            pass
    if isinstance(value, bool):
        raise ValueError(f"severity must be 0-5 or a name, not {value!r}")
    if isinstance(value, int):
        level = value
    elif isinstance(value, str):
        key = value.strip().lower()
        if key in _SEVERITY_WORDS:
            return _SEVERITY_WORDS[key]
        if not key.isdigit():
            raise ValueError(f"unknown severity {value!r}")
        level = int(key)
    elif isinstance(value, float) and value.is_integer():
        level = int(value)
    else:
        raise ValueError(f"severity must be 0-5 or a name, not {value!r}")
    if not 0 <= level <= 5:
        raise ValueError(f"severity {level} is outside 0-5")
    return level


@dataclass(slots=True, eq=False)
class JournalEntry:
    """One timestamped note on an alert; automatic notes use who='correlator' or a rule name."""

    at: float
    who: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "who": self.who, "text": self.text}


@dataclass(slots=True, eq=False)
class Elided(JournalEntry):
    """Stands for the notes dropped between a row's first and last ones."""

    dropped: int = 0

    def count(self, at: float) -> None:
        self.dropped += 1
        self.at = at
        self.text = (
            f"{self.dropped} older notes dropped (a row keeps its first {JOURNAL_HEAD} "
            f"and last {JOURNAL_MAX - JOURNAL_HEAD - 1})"
        )


@dataclass(slots=True, eq=False)
class Alert:
    """One row of the alert table (DESIGN.md §3); also the shape of a normalized event."""

    identifier: str
    node: str
    alertgroup: str
    severity: int = 1
    type: str = PROBLEM
    summary: str = ""
    alertkey: str = ""
    manager: str = ""
    agent: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    first_occurrence: float = 0.0
    last_occurrence: float = 0.0
    state_change: float = 0.0
    serial: int = 0
    tally: int = 1
    status: str = OPEN
    owner: str | None = None
    suppressed_by: str | None = None
    parent: str | None = None
    incident: str | None = None
    expire_at: float | None = None
    expire_after: float | None = None
    # notes, oldest first; `()` until the first note: most rows never get one, and a list
    # each is 56 bytes and an object the collector walks, for every occurrence made too
    journal: list[JournalEntry] | tuple[()] = ()
    # values a rule holds against new occurrences (escalate's `set:`), by field name
    # (`severity`, `summary`, `labels.<k>`, `annotations.<k>`); the table folds each
    # occurrence as if it carried them and drops them when a cleared row reopens.
    # Internal: not in to_dict, whose shape is DESIGN.md §3; the held values show there.
    pinned: dict[str, int | str] | None = None

    def note(self, at: float, who: str, text: str) -> None:
        journal = self.journal
        if isinstance(journal, tuple):
            journal = self.journal = []
        elif len(journal) >= JOURNAL_MAX:
            _drop_oldest_note(journal)
        if len(_note_texts) >= NOTE_TEXTS:
            _note_texts.clear()
        journal.append(JournalEntry(at, who, _note_texts.setdefault(text, text)))

    def to_dict(self) -> dict[str, Any]:
        """The public JSON shape of a row (every field of DESIGN.md §3)."""
        return {
            "identifier": self.identifier,
            "serial": self.serial,
            "node": self.node,
            "manager": self.manager,
            "agent": self.agent,
            "alertgroup": self.alertgroup,
            "alertkey": self.alertkey,
            "severity": self.severity,
            "type": self.type,
            "summary": self.summary,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "first_occurrence": self.first_occurrence,
            "last_occurrence": self.last_occurrence,
            "state_change": self.state_change,
            "tally": self.tally,
            "status": self.status,
            "owner": self.owner,
            "suppressed_by": self.suppressed_by,
            "parent": self.parent,
            "incident": self.incident,
            "expire_at": self.expire_at,
            "journal": [entry.to_dict() for entry in self.journal],
        }


def _drop_oldest_note(journal: list[JournalEntry]) -> None:
    """Make room for one note: the oldest after the head goes, counted in the marker."""
    marker = journal[JOURNAL_HEAD]
    if not isinstance(marker, Elided):
        marker = Elided(marker.at, "correlator", "")
        journal.insert(JOURNAL_HEAD, marker)
    while len(journal) >= JOURNAL_MAX:
        marker.count(journal.pop(JOURNAL_HEAD + 1).at)


@dataclass(slots=True, eq=False)
class Change:
    """One outcome of the engine, in the order it happened.

    `alert` is the live row, not a copy: consumers serialize a change before the
    next call into the engine (sinks), which keeps the hot path free of per-event
    snapshots. An engine built with `snapshots=True` (replay) also records the
    row as it was at this change, for exact step-by-step output.
    """

    at: float
    kind: str
    alert: Alert | None = None
    incident: dict[str, Any] | None = None
    receiver: str | None = None
    alerts: list[Alert] | None = None
    snapshot: dict[str, Any] | None = None
    group: dict[str, Any] | None = None  # a routed notification's group: its key and labels
    request: dict[str, Any] | None = None  # a policy's webhook: method, url, headers, body

    def sent_alerts(self) -> list[dict[str, Any]]:
        """A notification's alerts as they were sent (recorded with snapshots), else as now."""
        if self.snapshot is not None:
            return list(self.snapshot["alerts"])
        return [alert.to_dict() for alert in self.alerts or ()]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"at": self.at, "kind": self.kind}
        if self.kind == NOTIFICATION:
            out["receiver"] = self.receiver
            if self.group is not None:
                out["group"] = self.group
            if self.request is not None:
                out["request"] = self.request
            out["alerts"] = self.sent_alerts()
            return out
        if self.snapshot is not None:
            out["alert"] = self.snapshot
        elif self.alert is not None:
            out["alert"] = self.alert.to_dict()
        if self.incident is not None:
            out["incident"] = self.incident
        return out
