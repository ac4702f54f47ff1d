"""The engine: normalize → alert table → correlate, pure and synchronous.

`process(event, now)` and `tick(now)` return the changes they caused, in order.
Time only comes in through `now`, so replay and tests are deterministic. The
engine is also the `Context` operators act through: every row change passes
through the table and comes back here as a transition, which becomes a public
change and is dispatched to the operators subscribed to it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any, Final

from correlator import dispatch
from correlator.correlate.base import Operator, ParentLink
from correlator.correlate.parents import ParentLinks
from correlator.correlate.silences import TRANSITIONS as SILENCE_TRANSITIONS
from correlator.correlate.silences import Silences
from correlator.correlate.suppressions import Suppressions
from correlator.errors import EventError, LateEvent
from correlator.model import (
    CLEARED,
    CLEARED_KIND,
    CREATED,
    DELETED,
    SEVERITY_NAMES,
    SUPPRESSED,
    UNSUPPRESSED,
    UPDATED,
    Alert,
    Change,
    parse_severity,
)
from correlator.normalize.repeat import occurrence_of, repeat_of
from correlator.ruleset.loader import RuleSet
from correlator.ruleset.sandbox import LIMITS
from correlator.snapshot import ALERT_FIELDS, Decoder, Encoder, SnapshotError
from correlator.stats import Stats
from correlator.table.table import AlertTable, Resolved
from correlator.timeparse import format_duration
from correlator.timers import TimerHeap

SNAPSHOT_FORMAT: Final = 2  # bumped when a change makes older snapshots unreadable
OPERATOR_ACTIONS: Final = ("ack", "unack", "assign", "journal", "clear", "severity", "label")

PUBLIC_KIND: Final = {
    "created": CREATED,
    "updated": UPDATED,
    "repeated": UPDATED,
    "reopened": UPDATED,
    "acknowledged": UPDATED,
    "modified": UPDATED,
    "cleared": CLEARED_KIND,
    "deleted": DELETED,
    "suppressed": SUPPRESSED,
    "unsuppressed": UNSUPPRESSED,
}


class Engine:
    """One alert table and the compiled rules that act on it."""

    # Slots: on Python 3.11 an instance with a 30th attribute in its dict (this
    # class had 30) makes every attribute read on the hot path slower, 1.6 % of
    # the instructions per event. `__dict__` stays for what tests patch; `__weakref__`
    # for the scopes' check that a revoked partition's engine is freed.
    __slots__ = (
        "__dict__",
        "__weakref__",
        "_by_transition",
        "_changes",
        "_event_ops",
        "_gates",
        "_limits_seen",
        "_link_watchers",
        "_newest",
        "_normalizer",
        "_out",
        "_retired",
        "_row_always",
        "_row_buckets",
        "_row_decides",
        "_row_field",
        "_row_readers",
        "_snapshots",
        "_tally_watchers",
        "_timers",
        "_unstarted",
        "depth",
        "max_lateness",
        "next_timer",
        "operators",
        "parents",
        "rules",
        "silences",
        "stats",
        "suppressions",
        "table",
    )

    def __init__(
        self,
        rules: RuleSet,
        *,
        max_lateness: float = 300.0,
        delete_cleared_after: float = 120.0,
        snapshots: bool = False,
        changes: bool = True,
    ) -> None:
        self.stats = Stats()
        self._limits_seen = LIMITS.hits
        self._snapshots = snapshots
        self._changes = changes  # False: nobody reads them (`replay --final`), none is made
        self.max_lateness = max_lateness
        self._timers = TimerHeap()
        self.table = AlertTable(
            self._transition,
            # the table's expiries are safety nets: at the same instant, rules act first
            partial(self._timers.push, rank=1),
            self.stats,
            delete_cleared_after=delete_cleared_after,
            max_lateness=max_lateness,
        )
        self._out: list[Change] = []
        self.depth = 0  # `Context.depth`
        # the next timer's due time, None if none: asked before every event of a replay
        self.next_timer: Callable[[], float | None] = self._timers.next_due
        self.parents = ParentLinks(self.table, self._link_changed, self.count)
        self.suppressions = Suppressions(self._transition)
        # rules removed or changed by a reload (their last running version), whose
        # suppressions may be stale until the next entry starts the new versions
        self._retired: dict[str, Operator] = {}
        self._newest = float("-inf")
        self.operators: dict[str, Operator] = {}
        self.silences = Silences()  # not a rule: kept across reloads
        self.load(rules)

    # -- rules ---------------------------------------------------------------

    def load(self, rules: RuleSet) -> None:
        """Swap in a new rule set; operators whose definition is unchanged keep their state."""
        kept: list[Operator] = []
        for op in rules.build_operators(self.max_lateness):
            old = self.operators.get(op.name)
            if old is not None and old.spec == op.spec:
                kept.append(old)
                continue
            if old is not None and type(old) is type(op):
                op.adopt(old)  # a changed rule may keep what still applies (routing's groups)
            kept.append(op)
        self.rules = rules
        self._normalizer = rules.normalizer
        self._unstarted = [op for op in kept if self.operators.get(op.name) is not op]
        fresh = {op.name: op for op in kept}
        for name, op in self.operators.items():
            if fresh.get(name) is not op:
                self._retired.setdefault(name, op)
        self.operators = fresh
        tables = dispatch.build(kept)
        self._event_ops = tables.event_ops
        self._by_transition = tables.by_transition
        self._tally_watchers = tables.tally_watchers
        self._link_watchers = tables.link_watchers
        self._row_decides = tables.row_decides
        self._row_field = tables.row_field
        self._row_buckets = tables.row_buckets
        self._row_always = tables.row_always
        self._row_readers = tables.row_readers
        # a bare repeat is then told to no one: no change is made, no rule reads tally
        self.table.repeats_told = self._changes or bool(self._tally_watchers)
        # the repeat fast path is for events no normalize rule applies to: they lack the
        # gates' keys
        self._gates = self._normalizer.gates

    # -- the two entry points -------------------------------------------------

    def process(self, event: dict[str, Any], now: float) -> list[Change]:
        """Fold one raw event into the table; raise EventError if it must be dead-lettered."""
        if self._unstarted or self._retired:
            self._start(now)
        self.stats.events += 1
        gates = self._gates
        if gates is not None and type(event) is dict and event.keys().isdisjoint(gates):
            repeat = repeat_of(event, self.table.rows, now, self._newest - self.max_lateness)
            if repeat is not None:  # the commonest event: its steps inline, no call but these
                repeated, at, expire_after, annotations = repeat
                if at > self._newest:
                    self._newest = at
                self.table.fold_same(repeated, at, now, expire_after, annotations)
                field = self._row_field  # None: every repeat may concern event rules
                if self._row_decides is not None and (
                    field is None or self._row_always or field(repeated) in self._row_buckets
                ):
                    self._repeat(event, repeated, at, now)
                out = self._out  # `_drain`
                self._out = []
                if LIMITS.hits != self._limits_seen:
                    self._count_limits()
                return out
        try:
            occ = self._normalizer.normalize(event, now)
            if isinstance(occ, str):
                self.stats.discarded[occ] += 1
                return []
            at = occ.last_occurrence
            if at < self._newest - self.max_lateness:
                late = format_duration(self._newest - at)
                raise LateEvent(f"{late} older than the newest event (max_lateness exceeded)")
        except EventError as exc:
            self.stats.dead_lettered[exc.reason] += 1
            self._count_limits()
            raise
        if at > self._newest:
            self._newest = at
        row = self.table.upsert(occ, now)
        if row is not None:  # conditions on `tally` read the row's (a resolution: the cleared one)
            occ.tally = row.tally
        for op, wants in self._event_ops.candidates(occ):
            if wants(occ):
                op.on_event(occ, row, now, self)
        return self._drain()

    def _repeat(self, event: dict[str, Any], row: Alert, at: float, now: float) -> None:
        """What the full path's event rules do with an event that changed nothing of its
        row but tally (folded already).

        They see an occurrence made from the row's fields (which the event
        carries), unless the row's own index fields rule them all out; a lone
        rule that reads only values the two share is handed the row itself.
        """
        decides = self._row_decides
        if decides:  # the index reads only fields the occurrence shares: the row's answer holds
            field = self._row_field
            if field is None:
                candidates = self._event_ops.candidates(row)
            else:
                candidates = self._row_buckets.get(field(row), self._row_always)
            if not candidates:
                return
            if len(candidates) == 1:  # the usual: one rule, told before anything changes the row
                op, wants = candidates[0]
                labelled = self._row_readers.get(op)
                if labelled is not None:
                    # the occurrence has the event's labels, or none: the row's must be those
                    labels = event.get("labels")
                    if not labelled or (labels == row.labels if labels else not row.labels):
                        if wants(row):
                            op.on_event(row, row, now, self)
                        return
        occ = occurrence_of(event, row, at)
        occ.tally = row.tally
        if not decides:
            candidates = self._event_ops.candidates(occ)
        for op, wants in candidates:
            if wants(occ):
                op.on_event(occ, row, now, self)

    def tick(self, now: float) -> list[Change]:
        """Fire every timer due at or before `now`."""
        self._start(now)
        for when, owner, key in self._timers.pop_due(now):
            self._fire(when, owner, key)
        return self._drain()

    def run_timers_before(self, now: float) -> list[Change]:
        """Fire timers due strictly before `now` (replay: an event at `now` comes first)."""
        self._start(now)
        for when, owner, key in self._timers.pop_due(now, inclusive=False):
            self._fire(when, owner, key)
        return self._drain()

    def acknowledge(self, identifier: str, who: str, now: float) -> list[Change]:
        return self.operate("ack", identifier, who, now)

    def operate(
        self, action: str, identifier: str, who: str, now: float, value: str = ""
    ) -> list[Change]:
        """An operator's action on a row, journaled as `who` did it; each is a change.

        `ack`, `unack`, `assign` (value: the owner), `journal` (value: the text),
        `clear`, `severity` (value: a name or 0-5), `label` (value: `name=value`,
        e.g. a ticket number a receiver got back). KeyError: no such row;
        ValueError: a bad action or value (nothing changed).
        """
        row = self.table.get(identifier)
        if row is None:
            raise KeyError(identifier)
        if action not in OPERATOR_ACTIONS:
            raise ValueError(f"unknown action {action!r}: one of {', '.join(OPERATOR_ACTIONS)}")
        level = parse_severity(value) if action == "severity" else 0
        if action in ("assign", "journal") and not value.strip():
            raise ValueError(f"{action} needs a non-empty value")
        name, equals, text = value.partition("=")
        if action == "label" and not (equals and name.strip()):
            raise ValueError("label needs name=value")
        self._start(now)
        if action == "ack":
            self.table.acknowledge(row, now, who)
        elif action == "unack":
            self.table.unacknowledge(row, now, who)
        elif action == "clear":
            self.table.clear(row, now, who, "by an operator")
        elif action == "journal":
            row.note(now, who, value)
            self._transition("modified", row, now)
        elif action == "assign":
            row.owner = value
            self.modify(row, now, who, f"assigned to {value}")
        elif action == "label":
            row.labels[name.strip()] = text
            self.modify(row, now, who, f"label {name.strip()}={text}")
        else:
            row.severity = level
            self.modify(row, now, who, f"severity set to {SEVERITY_NAMES[level]}")
        return self._drain()

    # -- silences ----------------------------------------------------------------

    def silence(self, spec: dict[str, Any], now: float) -> list[Change]:
        """Add or change a silence (Alertmanager's fields, times as epoch seconds).

        ValueError: a bad silence (nothing changed). Checked before the rules a load
        brought start: a refused silence is not journaled, so it must change nothing
        a replay of the journal would not (the start happens at the next entry point).
        """
        self.silences.check(spec, now)
        self._start(now)
        self.silences.put(spec, now, self)
        return self._drain()

    def expire_silence(self, sid: str, now: float) -> list[Change]:
        """End a silence now; KeyError when there is none (checked first, as in `silence`)."""
        if sid not in self.silences.by_id:
            raise KeyError(sid)
        self._start(now)
        self.silences.expire(sid, now, self)
        return self._drain()

    # -- snapshots -------------------------------------------------------------

    @property
    def settled(self) -> bool:
        """Whether the rules a load brought have started (at the next entry point)."""
        return not (self._unstarted or self._retired)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain data (`correlator.snapshot`), for `restore`.

        Taken between two entry points, once `settled`.
        """
        if not self.settled:
            raise RuntimeError("a snapshot needs the loaded rules started: take it after a tick")
        table, operators = self.table, self.operators
        timers: list[tuple[float, int, int, str | None, Hashable]] = []
        for when, rank, order, owner, key in self._timers.entries():
            if owner is table:
                timers.append((when, rank, order, None, key))
            elif owner is self.silences:
                timers.append((when, rank, order, self.silences.name, key))
            elif isinstance(owner, Operator) and operators.get(owner.name) is owner:
                timers.append((when, rank, order, owner.name, key))  # others would do nothing
        encoder = Encoder(self._state_types())
        state = {
            "table": table.state(),
            "parents": self.parents.state(),
            "suppressors": self.suppressions.holders,
            "newest": self._newest,
            "silences": self.silences.by_id,
            "timers": timers,
            "operators": {
                name: (op.kind, {attr: getattr(op, attr) for attr in op.state})
                for name, op in operators.items()
            },
        }
        return {
            "format": SNAPSHOT_FORMAT,
            "alert_fields": list(ALERT_FIELDS),
            "rows": encoder.rows(list(table.rows.values())),  # first: the rest refers to them
            "state": encoder.encode(state),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load a snapshot into this fresh engine, built with the rules it was taken under.

        Rules the snapshot does not know start afresh at the next entry point.
        SnapshotError: a snapshot this version cannot read.
        """
        if snapshot.get("format") != SNAPSHOT_FORMAT:
            raise SnapshotError(
                f"snapshot format {snapshot.get('format')!r} is not {SNAPSHOT_FORMAT}"
            )
        decoder = Decoder(self._state_types(), snapshot.get("alert_fields", ALERT_FIELDS))
        rows = decoder.decode(snapshot["rows"])
        state = decoder.decode(snapshot["state"])
        self.table.restore(rows, state["table"])
        self.parents.restore(state["parents"])
        self.suppressions.holders = state["suppressors"]
        self._newest = state["newest"]
        self.silences.by_id = state.get("silences", {})
        self.silences.restored()
        restored: set[str] = set()
        for name, (kind, values) in state["operators"].items():
            op = self.operators.get(name)
            if op is None or op.kind != kind:
                continue
            for attr in op.state:
                if attr in values:
                    setattr(op, attr, values[attr])
            restored.add(name)
        self._unstarted = [op for op in self._unstarted if op.name not in restored]
        owners: dict[str | None, Any] = {name: self.operators[name] for name in restored}
        owners[None] = self.table
        owners[self.silences.name] = self.silences
        self._timers.restore(
            [
                (when, rank, order, owners[owner], key)
                for when, rank, order, owner, key in state["timers"]
                if owner in owners
            ]
        )

    def _state_types(self) -> list[type]:
        types: list[type] = [Resolved, ParentLink, *Silences.state_types]
        for op in self.operators.values():
            types.extend(t for t in op.state_types if t not in types)
        return types

    # -- plumbing ------------------------------------------------------------

    def _start(self, now: float) -> None:
        """Start operators loaded since the last entry; release what retired rules held.

        A rule removed or changed by a reload no longer holds its suppressions,
        unless its new version claims them again while starting (no flap).
        """
        if not (self._unstarted or self._retired):
            return
        operators, self._unstarted = self._unstarted, []
        retired, self._retired = self._retired, {}

        def start() -> None:
            for op in operators:
                op.start(now, self)

        self.suppressions.after_reload(start, retired, self.table, now)
        removed = retired - self.operators.keys()
        if removed:
            self._clear_raised_by(removed, now)

    def _clear_raised_by(self, removed: set[str], now: float) -> None:
        """Clear the open alerts removed rules raised: nothing is left that could clear them.

        One pass over the table per reload that removes a rule (never per event).
        A changed rule keeps its alerts: its new version clears them when their
        condition ends (absence, pair) or lets them expire (threshold).
        """
        for row in list(self.table.rows.values()):
            if row.agent in removed and row.manager == "correlator" and row.status != CLEARED:
                why = f"rule {row.agent} that raised it was removed by a reload"
                self.table.clear(row, now, "correlator", why)

    def _drain(self) -> list[Change]:
        out = self._out
        self._out = []
        if LIMITS.hits != self._limits_seen:
            self._count_limits()
        return out

    def _count_limits(self) -> None:
        """Template renders cut or refused since the last entry point returned (one at a time)."""
        self.stats.template_limited += LIMITS.hits - self._limits_seen
        self._limits_seen = LIMITS.hits

    def _fire(self, when: float, owner: Any, key: Hashable) -> None:
        if owner is self.table:
            self.table.on_timer(key, when)
        elif owner is self.silences:
            self.silences.on_timer(key, when, self)
        elif isinstance(owner, Operator) and self.operators.get(owner.name) is owner:
            owner.on_timer(key, when, self)  # timers of replaced rules are dropped

    def _transition(
        self, transition: str, alert: Alert, now: float, links_only: bool = False
    ) -> None:
        """Record the change, then dispatch it to the rules it concerns (see `modify`)."""
        self.depth += 1
        try:  # the returns below leave through `finally`
            if self._changes:
                change = Change(now, PUBLIC_KIND[transition], alert)
                if self._snapshots:
                    change.snapshot = alert.to_dict()
                self._out.append(change)
            if transition == "repeated":  # most changes: only rules reading tally see them
                for op in self._tally_watchers:
                    op.on_transition("updated", alert, now, self)
                return
            if links_only:
                for op in self._link_watchers:
                    op.on_transition(transition, alert, now, self)
                return
            if transition == "deleted":
                self.suppressions.holders.pop(alert.identifier, None)
            elif transition == "reopened":
                self.parents.reopened(alert, now)  # before the rules see the reopened row
            for op in self._by_transition.get(transition, ()):
                op.on_transition(transition, alert, now, self)
            if self.silences.by_id and transition in SILENCE_TRANSITIONS:
                self.silences.on_transition(transition, alert, now, self)
            if transition == "cleared" or transition == "deleted":
                self.parents.gone(alert, now, deleted=transition == "deleted")
        finally:
            self.depth -= 1

    # -- Context: what operators may do -----------------------------------------

    def schedule(self, when: float, operator: Operator, key: Hashable) -> None:
        self._timers.push(when, operator, key)

    def emit(self, change: Change) -> None:
        if not self._changes:
            return
        if self._snapshots and change.alerts is not None:  # a notification: its rows as sent
            change.snapshot = {"alerts": [alert.to_dict() for alert in change.alerts]}
        self._out.append(change)

    def raise_alert(
        self,
        operator: Operator,
        group: Sequence[tuple[str, Any]],
        now: float,
        *,
        trigger: Alert | None = None,
        members: Sequence[Alert] = (),
        count: int = 0,
        extra: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> Alert:
        """Raise (or raise again) a rule's alert; `note` is journalled by the rule first.

        The note goes into the row before the table publishes the change, so
        the `alert.created` record already says why the alert was raised.
        """
        spec = operator.alert_spec
        occ = None
        if extra is None and note is None:  # a storm's member: its alert is raised again
            occ = spec.again(
                group, now, self.table.rows, trigger=trigger, members=members, count=count
            )
        if occ is None:
            occ = spec.build(group, now, trigger=trigger, members=members, count=count, extra=extra)
        if note is not None:
            (self.table.rows.get(occ.identifier) or occ).note(now, operator.name, note)
        row = self.table.upsert(occ, now)
        assert row is not None  # a problem occurrence always lands in a row
        return row

    def clear(
        self, alert: Alert, now: float, who: str, why: str, *, at: float | None = None
    ) -> None:
        self.table.clear(alert, now, who, why, at=at)

    def suppress(self, alert: Alert, now: float, by: str, why: str) -> None:
        """Add a suppressor; `suppressed_by` names the first one still holding."""
        self.suppressions.add(alert, now, by, why)

    def unsuppress(self, alert: Alert, now: float, by: str, why: str) -> None:
        """Remove a suppressor; the alert is released when none is left."""
        self.suppressions.remove(alert, now, by, why)

    def suppressors(self, alert: Alert) -> tuple[str, ...]:
        """Every rule currently suppressing the alert, first one first."""
        return self.suppressions.of(alert)

    def set_parent(
        self, alert: Alert, link: ParentLink | None, now: float, who: str, why: str
    ) -> bool:
        """Set or unset `parent`: the one guarded path (no loop, no stale parent)."""
        return self.parents.set(alert, link, now, who, why)

    def parent_link(self, alert: Alert) -> ParentLink | None:
        return self.parents.get(alert)

    def in_maintenance(self, alert: Alert) -> bool:
        """Whether a rule that pauses escalation (maintenance) suppresses the alert."""
        holders = self.suppressions.holders.get(alert.identifier)
        if not holders:
            return False
        operators = self.operators
        for by in holders:  # a plain loop: a generator here cost more than the test
            op = operators.get(by)
            if op is not None and op.pauses_escalation:
                return True
        return False

    def modify(
        self, alert: Alert, now: float, who: str, why: str, *, links_only: bool = False
    ) -> None:
        """Publish a rule's change to a row (noted in its journal) and dispatch `modified`.

        `links_only`: only `parent` or `incident` changed, which most rules never
        read; they are spared the dispatch (a storm sets a parent per member).
        """
        alert.state_change = now
        alert.note(now, who, why)
        self._transition("modified", alert, now, links_only)

    def _link_changed(self, alert: Alert, now: float, who: str, why: str) -> None:
        self.modify(alert, now, who, why, links_only=True)

    def count(self, what: str, rule: str) -> None:
        self.stats.rule_events[(rule, what)] += 1

    def signal(self, transition: str, alert: Alert, now: float) -> None:
        for op in self._by_transition.get(transition, ()):
            op.on_transition(transition, alert, now, self)
