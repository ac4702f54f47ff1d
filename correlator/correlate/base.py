"""The operator interface: every correlation kind is one small class behind it.

The engine owns all state changes. An operator observes three things and acts
only through the `Context` the engine hands it:

- `on_event(occ, row, now, ctx)`: a normalized event passed `event_filter`
  (`occ` is the occurrence, `row` the table row it folded into, None when a
  resolution found no open problem);
- `on_transition(transition, alert, now, ctx)`: an alert row was created,
  reopened, cleared, ... (only the transitions listed in `transitions`);
- `on_timer(key, now, ctx)`: a timer the operator scheduled came due.

Operators keep their own indexes (by group or `on` values), never scan the
table, and bound their state (`cap` per rule, counted as `cap_hit` when hit:
per refused event by event-based kinds, per refused row and episode by
row-based kinds, see `Operator.refused`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, NamedTuple, Protocol, TypeVar

from correlator.model import Alert, Change
from correlator.ruleset.matchers import Matcher, Predicate
from correlator.table.table import AlertTable

# Row transitions operators may subscribe to.
CREATED = "created"
# a deduplicated occurrence that changed a field; one that only counted (tally,
# last_occurrence) reaches only rules whose conditions read `tally`, as `updated`
UPDATED = "updated"
REOPENED = "reopened"
CLEARED = "cleared"
DELETED = "deleted"
ACKNOWLEDGED = "acknowledged"
SUPPRESSED = "suppressed"
UNSUPPRESSED = "unsuppressed"
MODIFIED = "modified"  # a rule changed fields (severity, labels, ...)
# signals: told to the rules that want them, never published (the change was already)
ESCALATED = "escalated"  # an escalate rule escalated the row (policies `on: [escalate]`)
INCIDENT = "incident"  # an incident opened, changed or closed: told on its root-cause row


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Shared(Generic[K, V]):
    """Equal immutable values made once, so that many alerts' records hold one copy.

    A storm gives thousands of alerts the same note or record; made per alert,
    each costs its own bytes. A bounded memo of an operator, not its state: a
    restored engine starts without one and makes equal values again.
    """

    __slots__ = ("_limit", "_made")

    def __init__(self, limit: int = 1024) -> None:
        self._made: dict[K, V] = {}
        self._limit = limit

    def get(self, key: K) -> V | None:
        return self._made.get(key)

    def keep(self, key: K, value: V) -> V:
        """Remember `value` for `key` (forgetting all once `limit` are held); return it."""
        if len(self._made) >= self._limit:
            self._made.clear()
        self._made[key] = value
        return value


@dataclass(frozen=True)
class BuildEnv:
    """What the whole rule set offers an operator when it is built."""

    topology: dict[str, tuple[str, ...]] = field(default_factory=dict)  # node → depends_on
    # the engine's max_lateness: how long rules wait for an event stamped in the past
    max_lateness: float = 300.0


class ParentLink(NamedTuple):
    """Who set a row's `parent`: the engine keeps one per row that has a parent.

    `kind` decides what the link may point at: only an incident's link may
    point at a cleared (or deleted) row, its root cause.
    """

    parent: str
    rule: str
    kind: str


class Context(Protocol):
    """What an operator may ask of the engine."""

    table: AlertTable
    # changes being delivered to the rules, one inside another: 1 while a rule handles
    # one that no other delivery is waiting on, so every rule has been told of every
    # other row as it is
    depth: int

    def schedule(self, when: float, operator: Operator, key: Hashable) -> None: ...

    def emit(self, change: Change) -> None: ...

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
    ) -> Alert: ...

    def clear(
        self, alert: Alert, now: float, who: str, why: str, *, at: float | None = None
    ) -> None:
        """Clear a row; `at` is the event time of a resolution that clears it (remembered)."""
        ...

    def suppress(self, alert: Alert, now: float, by: str, why: str) -> None: ...

    def unsuppress(self, alert: Alert, now: float, by: str, why: str) -> None: ...

    def suppressors(self, alert: Alert) -> tuple[str, ...]:
        """Every rule suppressing the alert; empty whenever `alert.suppressed_by` is None."""
        ...

    def in_maintenance(self, alert: Alert) -> bool: ...

    def set_parent(
        self, alert: Alert, link: ParentLink | None, now: float, who: str, why: str
    ) -> bool:
        """Set (or with None unset) `parent` through the engine's one guarded path."""
        ...

    def parent_link(self, alert: Alert) -> ParentLink | None:
        """Who set the alert's current parent (None when it has none)."""
        ...

    def modify(
        self, alert: Alert, now: float, who: str, why: str, *, links_only: bool = False
    ) -> None: ...

    def count(self, what: str, rule: str) -> None: ...

    def signal(self, transition: str, alert: Alert, now: float) -> None:
        """Tell the rules that subscribe to a signal (`ESCALATED`, `INCIDENT`); nothing is
        published. An incident's root cause may be a row deleted since it cleared."""
        ...


class Operator:
    """Base of every correlation kind; subclasses override what they use."""

    kind: ClassVar[str] = ""
    transitions: frozenset[str] = frozenset()  # a rule may narrow its kind's set
    pauses_escalation: ClassVar[bool] = False  # its suppressions stop escalation clocks
    resets_on_reopen: ClassVar[bool] = False  # undoes its changes when a row reopens
    clears_on_transition: ClassVar[bool] = False  # may clear a row it is told about: told last
    # what the rule has learnt, by attribute name: a snapshot saves exactly these and
    # restores them into the same rule freshly built (the rest comes from its spec)
    state: ClassVar[tuple[str, ...]] = ()
    state_types: ClassVar[tuple[type, ...]] = ()  # the record classes found in `state`

    def __init__(self, name: str, spec: Any) -> None:
        self.name = name
        self.spec = spec
        self.event_filter: Predicate | None = None  # None: the operator wants no events
        self.event_keys: Sequence[Matcher] = ()  # equality matchers implied by the filter
        self.alert_spec: Any = None  # the compiled `alert:` of rules that raise one
        # every field `on_event` reads of its occurrence, then or later (a copy it keeps
        # included), if known: a repeat of a row whose values of them are the event's may
        # hand it the live row (no occurrence made). None: any field
        self.event_reads: frozenset[str] | None = None

    def on_event(self, occ: Alert, row: Alert | None, now: float, ctx: Context) -> None:
        """A normalized event passed `event_filter`."""

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        """A row made one of the transitions listed in `transitions`."""

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        """A timer scheduled with `ctx.schedule(when, self, key)` came due."""

    def start(self, now: float, ctx: Context) -> None:
        """The rule was (re)loaded with new state: `now` is the first time the engine runs it."""

    def size(self) -> int:
        """Entries of state held (windows, groups, pairs): for metrics and bounds."""
        return 0

    def adopt(self, old: Operator) -> None:
        """A reload changed this rule: take over what of its old version's state still
        applies (before `start`). By default nothing: a changed rule starts empty."""

    def retire(self, alert: Alert, now: float) -> None:
        """A reload removed or changed this rule and its new version does not hold `alert`.

        The engine is about to release the rule's suppression; first undo the marks
        only that hold explains (a label, an annotation), with a journal note.
        """

    def refused(self, transition: str, ctx: Context) -> None:
        """A row the rule does not track was refused: the rule is at its cap.

        `cap_hit` counts refused rows, not refused transitions: a refusal is
        counted when it happens as the row is created or reopened (`start`
        offers the open rows as created), once per episode. The same untracked
        row's later transitions (`updated`, `modified`, ...) are refused
        silently, so a storm of changes to one row is one hit, not one per change.
        """
        if transition in (CREATED, REOPENED):
            ctx.count("cap_hit", self.name)

    def holds(self, alert: Alert, ctx: Context) -> bool:
        """Whether this rule is among the alert's suppressors.

        Fast path: an alert nobody suppresses has `suppressed_by` None (the
        engine keeps it so), which spares building the suppressor tuple for
        most rows.
        """
        return alert.suppressed_by is not None and self.name in ctx.suppressors(alert)
