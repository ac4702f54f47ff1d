"""The alert table (DESIGN.md §3): one row per identifier, Netcool semantics.

Every change of a row goes through here and is reported to `notify` as a
transition, which the engine turns into public changes and operator calls.
Expiry and deletion are timers, never table scans.

Event time, not arrival order, decides clearing within `max_lateness`: a
clear that carries an event time (a resolution's stamp, its own or one of
`kind: clear`) is remembered per identifier for `max_lateness`, even past the
row's deletion. A problem stamped at or before it does not reopen the row; one
arriving with no row is created and cleared at once when the resolution found
no row to clear (in event-time order it would have cleared it), and brings
nothing back when the resolution's row was since deleted (it belonged to that
episode). Clears without an event time (expiry, a rule's own, an operator's)
are not remembered: expiry is inferred from silence, which a late occurrence
stamped inside it disproves, and the engine's clock does not compare with
the sources' stamps.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Final

from correlator.model import (
    ACKNOWLEDGED,
    CLEARED,
    INFO,
    OPEN,
    PROBLEM,
    RESOLUTION,
    Alert,
)
from correlator.stats import Stats
from correlator.timeparse import format_duration

Notify = Callable[[str, Alert, float], None]
Schedule = Callable[[float, object, Hashable], None]

_EXPIRE: Final = "expire"
_DELETE: Final = "delete"
_FORGET: Final = "forget"
MAX_REMEMBERED: Final = 100_000  # resolutions remembered at once; past it they are counted
SHARED_TEXTS: Final = 4096  # texts kept for new rows to share: a table that stays in cache
SHARED_LENGTH: Final = 32  # a longer alertkey or summary is not shared (see `_share_texts`)


@dataclass(slots=True)
class Resolved:
    """The newest remembered clear of an identifier: its event time, kept until `until`."""

    at: float
    until: float
    landed: bool  # a row held this episode (it was cleared): later older problems were in it


class AlertTable:
    """Rows by identifier plus the rules that fold occurrences into them."""

    def __init__(
        self,
        notify: Notify,
        schedule: Schedule,
        stats: Stats,
        *,
        delete_cleared_after: float = 120.0,
        max_lateness: float = 300.0,
    ) -> None:
        self.rows: dict[str, Alert] = {}
        self._notify = notify
        self._schedule = schedule
        self._stats = stats
        self._serial = 0
        self._expiring: dict[str, float] = {}  # identifier → its earliest pending expiry timer
        self.delete_cleared_after = delete_cleared_after
        self.max_lateness = max_lateness
        self.max_remembered = MAX_REMEMBERED
        self._resolved: dict[str, Resolved] = {}  # identifier → its newest timed clear
        self._texts: dict[str, str] = {}  # texts new rows share (see `_share_texts`)
        self.repeats_told = True  # whether `fold_same` tells `notify` of a bare repeat

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, identifier: str) -> Alert | None:
        return self.rows.get(identifier)

    def remembered(self) -> int:
        """Clears remembered for problems delivered after them (bounded by `max_remembered`)."""
        return len(self._resolved)

    def upsert(self, occ: Alert, now: float) -> Alert | None:
        """Fold one occurrence into the table; return the row it landed in, if any."""
        row = self.rows.get(occ.identifier)
        if occ.type == RESOLUTION:
            return self._resolve(row, occ, now)
        if row is None:
            if occ.identifier in self._resolved:
                return self._after_clear(row, occ, now)
            return self.insert(occ, now)
        self._stats.dedup_hits += 1
        at = occ.last_occurrence
        if at < row.last_occurrence:
            self._stats.late_occurrences += 1
            self.repeat(row, row.last_occurrence, now)
            return row
        if row.status == CLEARED and occ.identifier in self._resolved:
            return self._after_clear(row, occ, now)
        return self._fold(row, occ, at, now)

    def _fold(self, row: Alert, occ: Alert, at: float, now: float) -> Alert:
        """A new occurrence of a row: the fields it carries, a reopen if the row was cleared."""
        row.tally += 1
        row.last_occurrence = at
        severity, summary = occ.severity, occ.summary
        labels, annotations = occ.labels, occ.annotations
        if row.pinned is not None:  # a rule holds values: fold as if the occurrence carried them
            severity, summary, labels, annotations = _with_pinned(row, occ)
        changed = False
        if row.severity != severity:
            row.severity = severity
            changed = True
        if row.summary != summary:
            row.summary = summary
            changed = True
        fields_changed = changed or row.type != occ.type
        # the usual repeat carries what the row has: one C-level subset test each
        if labels and not labels.items() <= row.labels.items() and _merge(row.labels, labels):
            fields_changed = True
        if (
            annotations
            and not annotations.items() <= row.annotations.items()
            and _merge(row.annotations, annotations)
        ):
            fields_changed = True
        row.type = occ.type
        if occ.expire_after is not None:
            row.expire_after = occ.expire_after
        if row.expire_after is not None:
            row.expire_at = at + row.expire_after
            self._arm_expiry(row)
        if row.status == CLEARED:  # a problem or info occurrence (resolutions went above)
            row.status = OPEN
            row.state_change = at
            row.note(now, "correlator", f"reopened by a new occurrence (tally {row.tally})")
            self._notify("reopened", row, now)
            return row
        if changed:
            row.state_change = at
        # subscribers to "updated" see field changes; a bare repeat is cheaper to ignore
        self._notify("updated" if fields_changed else "repeated", row, now)
        return row

    def fold_same(
        self,
        row: Alert,
        at: float,
        now: float,
        expire_after: float | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        """What `_fold` does with an occurrence that carries exactly what the open row has
        (but for `expire_after` and annotation texts, if it sets them).

        The engine's repeat fast path: the commonest event, without an occurrence object.
        The caller checked the rest (not cleared, nothing pinned, not late).
        """
        self._stats.dedup_hits += 1
        row.tally += 1
        row.last_occurrence = at
        updated = annotations is not None and _merge(row.annotations, annotations)
        if expire_after is not None:
            row.expire_after = expire_after
        if row.expire_after is not None:
            row.expire_at = at + row.expire_after
            self._arm_expiry(row)
        if updated:
            self._notify("updated", row, now)
        elif self.repeats_told:
            self._notify("repeated", row, now)

    def repeat(self, row: Alert, at: float, now: float) -> None:
        """One more occurrence that changes nothing but tally (and the time it was last seen)."""
        row.tally += 1
        if at > row.last_occurrence:
            row.last_occurrence = at
            if row.expire_after is not None and row.status != CLEARED:
                row.expire_at = at + row.expire_after
                self._arm_expiry(row)
        self._notify("repeated", row, now)

    def insert(self, alert: Alert, now: float) -> Alert:
        """Add a new row (an occurrence or a synthetic alert) and announce it."""
        self._serial += 1
        alert.serial = self._serial
        _share_texts(alert, self._texts)
        alert.status = OPEN
        at = alert.last_occurrence
        alert.first_occurrence = alert.last_occurrence = alert.state_change = at
        self.rows[alert.identifier] = alert
        if alert.expire_after is not None:
            alert.expire_at = at + alert.expire_after
            self._arm_expiry(alert)
        self._notify("created", alert, now)
        return alert

    def _resolve(self, row: Alert | None, occ: Alert, now: float) -> Alert | None:
        at = occ.last_occurrence
        if row is None or row.status == CLEARED or row.type == INFO:
            self._stats.resolutions_unmatched += 1
            if row is None or row.type != INFO:  # kept for a problem stamped before it
                self._remember(occ.identifier, at, now, landed=row is not None)
            return None
        if at < row.last_occurrence:
            self._stats.resolutions_late += 1
            row.note(now, "correlator", "ignored a resolution older than the last occurrence")
            return row
        self.clear(row, now, "correlator", "resolution received", at=at)
        return row

    def _after_clear(self, row: Alert | None, occ: Alert, now: float) -> Alert | None:
        """A problem (or info) for an identifier with a remembered clear: event time decides.

        Stamped after the clear, it opens a new episode (the memory is done).
        Stamped at or before it, a problem counts in the cleared row, is created
        cleared when the resolution found no row, or is dropped when the row
        it belonged to is gone. Info is never cleared by a resolution.
        """
        known = self._resolved[occ.identifier]
        at = occ.last_occurrence
        if at > known.at or occ.type != PROBLEM:
            if at > known.at:
                del self._resolved[occ.identifier]
            return self.insert(occ, now) if row is None else self._fold(row, occ, at, now)
        self._stats.occurrences_before_resolution += 1
        if row is not None:
            row.note(
                now, "correlator", "counted, not reopened: stamped before the clearing resolution"
            )
            self.repeat(row, at, now)
            return row
        if known.landed:
            return None
        row = self.insert(occ, now)
        self.clear(row, now, "correlator", "resolution received before this problem", at=known.at)
        return row

    def _remember(self, identifier: str, at: float, now: float, *, landed: bool) -> None:
        """Keep a clear's event time for `max_lateness` after it arrived (or was stamped)."""
        known = self._resolved.get(identifier)
        until = max(at, now) + self.max_lateness
        if known is None:
            if len(self._resolved) >= self.max_remembered:
                self._stats.resolutions_cap_hit += 1
                return
            known = self._resolved[identifier] = Resolved(at, until, landed)
        else:
            known.at = max(known.at, at)
            known.landed = known.landed or landed
            if until <= known.until:
                return
            known.until = until
        self._schedule(until, self, (_FORGET, identifier))

    def clear(self, row: Alert, now: float, who: str, why: str, *, at: float | None = None) -> None:
        """Clear an open row: severity 0, status cleared, deleted after the grace period.

        `at`: the event time of what cleared it (a resolution), remembered for
        `max_lateness`: problems stamped at or before it do not reopen the row.
        """
        if row.status == CLEARED:
            return
        if at is not None:
            self._remember(row.identifier, at, now, landed=True)
        row.status = CLEARED
        row.severity = 0
        row.state_change = now if at is None or at < row.state_change else at
        row.expire_at = None
        row.note(now, who, f"cleared: {why}")
        # the grace runs from when the row cleared here: a late resolution's own time
        # may be long past, and the row must not vanish the moment it clears
        self._schedule(
            max(row.state_change, now) + self.delete_cleared_after, self, (_DELETE, row.identifier)
        )
        self._notify("cleared", row, now)

    def acknowledge(self, row: Alert, now: float, who: str) -> None:
        if row.status != OPEN:
            return
        row.status = ACKNOWLEDGED
        row.owner = row.owner or who
        row.state_change = now
        row.note(now, who, "acknowledged")
        self._notify("acknowledged", row, now)

    def unacknowledge(self, row: Alert, now: float, who: str) -> None:
        """Back to open (the owner stays): an operator hands the alert back."""
        if row.status != ACKNOWLEDGED:
            return
        row.status = OPEN
        row.state_change = now
        row.note(now, who, "unacknowledged")
        self._notify("modified", row, now)

    def delete(self, row: Alert, now: float) -> None:
        if self.rows.get(row.identifier) is row:
            del self.rows[row.identifier]
            self._notify("deleted", row, now)

    def _arm_expiry(self, row: Alert) -> None:
        at = row.expire_at
        if at is None:
            return
        armed = self._expiring.get(row.identifier)
        if armed is None or at < armed:  # later expiries wait for the armed timer to re-arm
            self._expiring[row.identifier] = at
            self._schedule(at, self, (_EXPIRE, row.identifier))

    def state(self) -> dict[str, Any]:
        """What the table knows beside its rows (its timers are the engine's), for snapshots."""
        return {"serial": self._serial, "expiring": self._expiring, "resolved": self._resolved}

    def restore(self, rows: list[Alert], state: dict[str, Any]) -> None:
        """Load rows (in their order) and `state` from a snapshot into an empty table."""
        self.rows = {row.identifier: row for row in rows}
        self._serial = state["serial"]
        self._expiring = state["expiring"]
        self._resolved = state["resolved"]

    def on_timer(self, key: Hashable, now: float) -> None:
        """Expire or delete a row if the timer still applies (rows move on)."""
        assert isinstance(key, tuple)
        what, identifier = key
        row = self.rows.get(identifier)
        if what == _EXPIRE:
            if self._expiring.get(identifier) != now:
                return  # superseded by an earlier timer, which handles the row
            del self._expiring[identifier]
            if row is None or row.status == CLEARED or row.expire_at is None:
                return
            if row.expire_at > now:
                self._arm_expiry(row)
                return
            after = format_duration(row.expire_after or 0.0)
            self.clear(row, now, "correlator", f"expired after {after} without a new occurrence")
        elif what == _FORGET:
            known = self._resolved.get(identifier)
            if known is not None and known.until <= now:
                del self._resolved[identifier]
        elif what == _DELETE:
            if row is None or row.status != CLEARED:
                return
            due = row.state_change + self.delete_cleared_after
            if due <= now:
                self.delete(row, now)
            else:  # touched since it cleared (a rule's note): the grace period restarts
                self._schedule(due, self, (_DELETE, identifier))


def _with_pinned(row: Alert, occ: Alert) -> tuple[int, str, dict[str, str], dict[str, str]]:
    """An occurrence's severity, summary, labels and annotations with the row's pinned values.

    A pinned severity is a floor (a higher occurrence severity still wins);
    other pinned values replace what the occurrence carries. A cleared row
    that reopens starts a new episode: its pins are dropped, nothing is held.
    """
    severity, summary, labels, annotations = occ.severity, occ.summary, occ.labels, occ.annotations
    pinned = row.pinned
    if pinned is None or row.status == CLEARED:
        row.pinned = None
        return severity, summary, labels, annotations
    for name, value in pinned.items():
        if name == "severity":
            severity = max(severity, int(value))
        elif name == "summary":
            summary = str(value)
        else:
            head, _, key = name.partition(".")
            if head == "labels":
                labels = {**labels, key: str(value)}
            else:
                annotations = {**annotations, key: str(value)}
    return severity, summary, labels, annotations


def _merge(into: dict[str, str], new: dict[str, str]) -> bool:
    """Merge labels or annotations; True when a value was added or changed."""
    changed = False
    for key, value in new.items():
        if into.get(key) != value:
            into[key] = value
            changed = True
    return changed


def _share_texts(alert: Alert, texts: dict[str, str]) -> None:
    """Share the texts of a new row with the rows before it that hold equal ones.

    Alert group, key, manager, agent, summary and label values: one copy each
    in memory (a Prometheus alert's name, job and severity are in every row),
    and a repeat's comparison reads a string that other rows keep in the CPU's
    cache. A string compares equal shared or not.

    Not `sys.intern`: it keeps every text ever seen, and most rows bring a few
    that no other row has (an instance, a label set as alertkey), so its table
    only grew. `texts` is kept small instead (cleared when full): the texts many
    rows share are back in it after the next row that has them.
    """
    if len(texts) >= SHARED_TEXTS:
        texts.clear()
    share = texts.setdefault
    alert.alertgroup = share(alert.alertgroup, alert.alertgroup)
    alert.manager = share(alert.manager, alert.manager)
    alert.agent = share(alert.agent, alert.agent)
    # a long key or summary is nearly always its row's own (a label set, a sentence naming
    # the host): hashing it to look it up cost more than the rare copy it saves
    alertkey, summary = alert.alertkey, alert.summary
    if len(alertkey) <= SHARED_LENGTH:
        alert.alertkey = share(alertkey, alertkey)
    if len(summary) <= SHARED_LENGTH:
        alert.summary = share(summary, summary)
    labels = alert.labels
    for key, value in labels.items():
        labels[key] = share(value, value)
