"""`kind: pair` — a `first` event must be followed by a `second` within `within`.

The late-job / lost-heartbeat-pair pattern (SEC's `PairWithWindow`): a job
start opens a pair for its `on` values; the job end closes it. When no end
comes by first+`within`, the rule raises its `alert:`; an end that arrives
after that clears the alert again (the job finished, late), with a journal note.

Pairs live in a dict keyed by their `on` values: a `second` costs one lookup,
never a scan. A repeated `first` neither extends nor restarts an open pair (an
earlier one arriving out of order moves the deadline earlier: the pair starts
at the first `first`). Every `second` is remembered for a while (`_Second`):
one that completed a pair absorbs a redelivered `first` of that pair, and one
without any `first` (ignored for alerting) completes a `first` delivered after
it (reordered across partitions) instead of letting it open a pair that would
fire falsely.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Final, Literal

from pydantic import Field

from correlator.correlate.base import CLEARED, DELETED, BuildEnv, Context, Operator
from correlator.correlate.grouping import FieldKey
from correlator.correlate.synthetic import SyntheticAlert
from correlator.errors import RuleFieldError
from correlator.model import CLEARED as STATUS_CLEARED
from correlator.model import Alert
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import Matcher, Predicate, all_of, compile_matchers, one_of
from correlator.ruleset.paths import fields_read
from correlator.ruleset.schema import AlertSpec, Duration, FieldNames, Matchers, Rule
from correlator.timeparse import format_duration

_DUE: Final = "due"  # timer: a pair's deadline
_SEEN: Final = "seen"  # timer: forget a remembered second

Key = tuple[str, ...]


class PairRule(Rule):
    kind: Literal["pair"]
    first: Matchers
    second: Matchers
    on: FieldNames
    within: Duration
    alert: AlertSpec | None = None
    max_pairs: int = Field(100_000, ge=1)


@dataclass(slots=True)
class _Pending:
    """An open pair: the first occurrence (a private copy, for templates) and its deadline."""

    first: Alert
    at: float
    deadline: float


@dataclass(slots=True)
class _Raised:
    """A raised alert that a late `second` may still clear."""

    alert: Alert
    at: float  # time of the `first` it was raised for


@dataclass(slots=True)
class _Second:
    """The newest `second` seen for some `on` values, kept to pair `first`s delivered after it.

    `first` is the time of the `first` it completed (+inf for an unpaired
    second). A `first` is already paired when it lies inside that completed
    run, or at most `within` before the second.
    """

    first: float
    at: float
    identifier: str = ""  # the second's, for the journal of an alert it clears


def common_equalities(*groups: list[Matcher]) -> list[Matcher]:
    """Equality matchers present in every group: safe dispatch keys for an OR of groups."""
    head, *rest = groups
    wanted = [{(m.name, m.value) for m in group if m.is_equality} for group in rest]
    return [m for m in head if m.is_equality and all((m.name, m.value) in w for w in wanted)]


def _either_key(first: list[Matcher], second: list[Matcher]) -> Matcher | None:
    """An index key for `first` OR `second`: both pin one name (`alertgroup`) to a value."""
    for a in first:
        for b in second:
            if a.is_equality and b.is_equality and a.name == b.name:
                return one_of([a, b])
    return None


_FIELDS: Final = attrgetter(*(f.name for f in fields(Alert)))  # every field, in order


def _snapshot(occ: Alert, row: Alert | None) -> Alert:
    """`occ` itself, or a private copy when it is the live row, which dedup and expiry change.

    An occurrence that is not the row is the event's own (the engine made it for
    this event, and rules only read it): it is kept as it is. The row also stands
    for a repeat's occurrence (`event_reads`): its copy then differs from that
    occurrence only in fields the rule never reads of it. The copy is made
    positionally from one C-level read of every field (`dataclasses.replace`
    cost three times as much, once per job start).
    """
    if occ is not row:
        return occ
    copy = Alert(*_FIELDS(occ))
    copy.labels, copy.annotations, copy.journal = dict(occ.labels), dict(occ.annotations), []
    return copy


class PairOperator(Operator):
    state = ("_pending", "_raised", "_raised_key", "_seconds")
    state_types = (_Pending, _Raised, _Second)
    kind = "pair"
    transitions = frozenset((CLEARED, DELETED))

    def __init__(self, spec: PairRule, max_lateness: float = 300.0) -> None:
        super().__init__(spec.name, spec)
        if spec.within <= 0:
            raise RuleFieldError(("within",), "within must be longer than 0s")
        self.alert_spec = SyntheticAlert(spec.name, spec.alert)
        scope = compile_matchers(spec.match)
        first = compile_matchers(spec.first)
        second = compile_matchers(spec.second)
        self._is_first = all_of([m.test for m in first])
        self._is_second = all_of([m.test for m in second])
        self.event_filter = self._filter(scope, when_alert(spec.when))
        keys = [m for m in scope if m.is_equality] + common_equalities(first, second)
        either = _either_key(first, second)
        self.event_keys = keys or ([either] if either is not None else [])
        self._on = FieldKey(spec.on)
        if spec.when is None and self.alert_spec.reads_severity_only:  # the first kept: a copy
            names = [m.name for m in (*scope, *first, *second)] + spec.on
            self.event_reads = fields_read(names) | {"identifier", "last_occurrence", "severity"}
        self._within = spec.within
        self._cap = spec.max_pairs
        self._pending: dict[Key, _Pending] = {}
        self._raised: dict[Key, _Raised] = {}
        self._raised_key: dict[str, Key] = {}  # synthetic identifier → key
        self._seconds: dict[Key, _Second] = {}  # key → the newest second, paired or not
        # how long a second is remembered: a first stamped before it may still arrive
        self._keep = max(spec.within, max_lateness)

    def _filter(self, scope: list[Matcher], when: Predicate | None) -> Predicate:
        in_scope = all_of([m.test for m in scope])
        is_first, is_second = self._is_first, self._is_second

        def test(occ: Alert) -> bool:
            return in_scope(occ) and (is_first(occ) or is_second(occ))

        def either(occ: Alert) -> bool:  # no `match:`, the usual: no call for the scope
            return is_first(occ) or is_second(occ)

        wanted = test if scope else either
        if when is None:
            return wanted
        return lambda occ: wanted(occ) and when(occ)

    # -- events --------------------------------------------------------------

    def on_event(self, occ: Alert, row: Alert | None, now: float, ctx: Context) -> None:
        key = self._on.of(occ)
        at = occ.last_occurrence
        second = self._is_second(occ)
        if second and (key in self._pending or key in self._raised):
            self._on_second(key, occ, at, now, ctx)
        elif not second or self._is_first(occ):  # it passed the filter: else it is a first
            self._on_first(key, occ, row, at, ctx)
        else:
            self._on_second(key, occ, at, now, ctx)

    def _on_first(self, key: Key, occ: Alert, row: Alert | None, at: float, ctx: Context) -> None:
        if self._paired(key, at):
            return
        pending = self._pending.get(key)
        if pending is not None:
            if at < pending.at:  # an earlier first, delivered late: the pair starts there
                pending.first, pending.at = _snapshot(occ, row), at
                pending.deadline = at + self._within
                ctx.schedule(pending.deadline, self, (_DUE, key))
            return  # a repeat neither extends nor restarts the timer
        if self.size() >= self._cap:
            ctx.count("cap_hit", self.name)
            return
        pending = _Pending(_snapshot(occ, row), at, at + self._within)
        self._pending[key] = pending
        ctx.schedule(pending.deadline, self, (_DUE, key))

    def _paired(self, key: Key, at: float) -> bool:
        """Whether a remembered second already pairs a `first` at `at` (redelivered or reordered).

        A redelivered `first` of a completed run lies inside it; a `first`
        delivered after its own `second` lies at most `within` before it.
        """
        second = self._seconds.get(key)
        if second is None or at > second.at:
            return False  # a later first is a new run
        if at < second.first and second.at > at + self._within:
            return False  # too long before the second to be paired with it
        second.first = min(second.first, at)  # its repeats are absorbed too
        return True

    def _on_second(self, key: Key, occ: Alert, at: float, now: float, ctx: Context) -> None:
        first: float | None = None
        pending = self._pending.get(key)
        if pending is not None and at > pending.deadline:
            self._expire(key, pending, ctx)  # too late; its deadline timer has not fired yet
        elif pending is not None and at >= pending.at:
            del self._pending[key]
            first = pending.at
        raised = self._raised.get(key)
        if raised is not None and at >= raised.at:
            self._forget_raised(key)
            self._clear_late(raised, occ.identifier, at, now, ctx, how="arrived")
            first = raised.at
        if first is None and not self._clear_leftover(key, occ, at, now, ctx):
            ctx.count("unpaired_second", self.name)  # ignored, but kept for a reordered first
        self._remember_second(key, first, occ, ctx)

    def _clear_leftover(self, key: Key, occ: Alert, at: float, now: float, ctx: Context) -> bool:
        """Clear an open alert of ours this rule does not track, if `occ` ends its run.

        Such an alert was raised before a reload changed the rule: the new
        version starts with empty state. Its identifier is
        rendered with the second in the place of the first: exact for the
        default identifier and any template of the `on` values.
        """
        identifier = self.alert_spec.default_identifier(key)
        if identifier is None:
            group = list(zip(self.spec.on, key, strict=True))
            identifier = self.alert_spec.identifier_for(group, occ, (occ,), 1)
        row = ctx.table.get(identifier)
        if row is None or row.agent != self.name or row.status == STATUS_CLEARED:
            return False
        if at < row.last_occurrence - self._within:
            return False  # it was raised for a run that started after this second
        why = f"second event {occ.identifier} received (raised before the rule's state was reset)"
        ctx.clear(row, now, self.name, why)
        return True

    def _remember_second(self, key: Key, first: float | None, occ: Alert, ctx: Context) -> None:
        """Keep the newest second of `key` for max(`within`, 5m): see `_paired`.

        A newer second that completed nothing (a repeat) keeps the start of the run
        the older one completed, so a redelivered `first` of that run still pairs.
        A newer second replaces the older one's values in place; the one timer
        the key has re-arms itself for it when it comes due (a timer per second
        cost a heap push and a pop per job end).
        """
        at = occ.last_occurrence
        start = float("inf") if first is None else first
        known = self._seconds.get(key)
        if known is not None and known.at >= at:
            if known.at == at:  # the same second again: keep what it completed
                known.first = min(known.first, start)
            return  # an older second: the newer one stands for the newer run
        if known is None:
            if self.size() >= self._cap:
                ctx.count("cap_hit", self.name)
                return
            self._seconds[key] = _Second(start, at, occ.identifier)
            ctx.schedule(at + self._keep, self, (_SEEN, key))
        else:
            if first is not None:
                known.first = start
            known.at, known.identifier = at, occ.identifier

    def _clear_late(
        self, raised: _Raised, second: str, at: float, now: float, ctx: Context, *, how: str
    ) -> None:
        """The run ended late: clear its alert, saying how late the second event `second` was."""
        row = raised.alert
        if ctx.table.get(row.identifier) is not row:
            return
        late = format_duration(max(at - raised.at - self._within, 0.0))
        deadline = format_duration(self._within)
        ctx.clear(
            row, now, self.name, f"second event {second} {how} {late} after the {deadline} deadline"
        )

    # -- timers and transitions ------------------------------------------------

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        assert isinstance(key, tuple)
        what, group = key
        if what == _DUE:
            pending = self._pending.get(group)
            if pending is not None and pending.deadline <= now:
                self._expire(group, pending, ctx)
                self._late_second(group, pending, now, ctx)
        elif what == _SEEN:
            second = self._seconds.get(group)
            if second is None:
                return
            if second.at + self._keep <= now:
                del self._seconds[group]
            else:  # a newer second came since: keep it until its own time is up
                ctx.schedule(second.at + self._keep, self, key)

    def _expire(self, key: Key, pending: _Pending, ctx: Context) -> None:
        """No second by the deadline: raise the alert (at the deadline, whatever the clock says)."""
        del self._pending[key]
        when = pending.deadline
        group = list(zip(self.spec.on, key, strict=True))
        first = pending.first
        note = (
            f"raised: no second event for {self._on.describe(key)} within "
            f"{format_duration(self._within)} of first event {first.identifier}"
        )
        alert = ctx.raise_alert(
            self, group, when, trigger=first, members=(first,), count=1, note=note
        )
        self._forget_raised(key)
        if alert.identifier in self._raised_key:
            self._forget_raised(self._raised_key[alert.identifier])
        self._raised[key] = _Raised(alert, pending.at)
        self._raised_key[alert.identifier] = key

    def _late_second(self, key: Key, pending: _Pending, now: float, ctx: Context) -> None:
        """A second after the deadline was delivered before its first: it clears the alert now.

        In order, that second would have arrived after the raise and cleared it
        as late; delivered first, it was remembered, and ends the run here.
        """
        second = self._seconds.get(key)
        raised = self._raised.get(key)
        if second is None or raised is None or second.at < pending.at:
            return
        if second.first != float("inf") and second.first < pending.at:
            return  # it completed an earlier run
        second.first = pending.at
        self._forget_raised(key)
        how = "(delivered before its first) came"
        self._clear_late(raised, second.identifier, second.at, now, ctx, how=how)

    def _forget_raised(self, key: Key) -> None:
        raised = self._raised.pop(key, None)
        if raised is not None:
            self._raised_key.pop(raised.alert.identifier, None)

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        """Our raised alert was cleared or deleted by someone else: stop tracking it."""
        key = self._raised_key.get(alert.identifier)
        raised = self._raised.get(key) if key is not None else None
        if key is not None and raised is not None and raised.alert is alert:
            self._forget_raised(key)

    def size(self) -> int:
        return len(self._pending) + len(self._raised) + len(self._seconds)


def build(spec: PairRule, env: BuildEnv) -> PairOperator:
    return PairOperator(spec, env.max_lateness)
