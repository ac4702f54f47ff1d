"""`kind: threshold` — `count` matching events within `window` raise one alert per group.

The storm-to-one-alert pattern (SEC's `SingleWithThreshold`, Netcool's event
rate triggers): a site whose uplink is cut sends a NodeUnreachable per host;
the rule raises one `site-outage` per site instead. Per `group_by` value the
rule counts matching events (or `distinct:` values of a field) whose event time
lies in the closed window [t - window, t], t being the newest event time of
the group. At `count` it raises its `alert:` once; from then on every matching
event is folded into that row (tally, `count`, `members`) and its row gets
`parent` = the synthetic identifier. The alert clears `clear_after` (default
`window`) after the last matching event; a `reset_on:` event discards the
group's count and clears a raised alert.

State is small by construction: before the raise a group holds fewer than
`count` (time, identifier) entries, since reaching `count` raises and empties
them; after the raise it holds counters only. One timer per group, re-armed
when it fires (the group's deadline only ever moves later).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import Field

from correlator.correlate.base import CLEARED, BuildEnv, Context, Operator, ParentLink
from correlator.correlate.grouping import FieldKey
from correlator.correlate.synthetic import SyntheticAlert
from correlator.errors import RuleFieldError
from correlator.model import CLEARED as STATUS_CLEARED
from correlator.model import RESOLUTION, Alert
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import Matcher, Predicate, all_of, as_text, compile_matchers
from correlator.ruleset.paths import alert_getter, fields_read
from correlator.ruleset.schema import AlertSpec, Duration, Matchers, Rule
from correlator.timeparse import format_duration

MAX_MEMBERS: Final = 100  # member rows handed to templates (all members get `parent`)
MAX_VALUES: Final = 10_000  # distinct values remembered for a raised alert's `count`

Key = tuple[str, ...]


class ThresholdRule(Rule):
    kind: Literal["threshold"]
    group_by: list[str] = []
    count: int = Field(ge=1)
    window: Duration
    distinct: str | None = None
    clear_after: Duration | None = None
    reset_on: Matchers = []
    alert: AlertSpec | None = None
    max_groups: int = Field(100_000, ge=1)


@dataclass(slots=True)
class _Group:
    """One group's window (before the raise) or raised episode (after it); its `group_by`
    values are its key in the rule's groups (not a copy each: most never raise)."""

    newest: float  # newest matching event time
    floor: float = float("-inf")  # events at or before a reset are discarded
    # sorted (time, identifier): fewer than `count` (reaching it raises), so a list, not a
    # deque, whose first block alone is 760 B in every group (snapshots may hold a deque)
    times: list[tuple[float, str]] = field(default_factory=list)
    # `distinct:` value → (time, identifier); None until the first (most groups of a storm
    # never raise: the collections below are made when needed, not 550 B in every group)
    seen: dict[str, tuple[float, str]] | None = None
    alert: Alert | None = None
    count: int = 0  # events (distinct values) counted for the raised alert
    values: set[str] | None = None  # raised, `distinct:`: the values counted
    members: list[Alert] | None = None  # raised: the first MAX_MEMBERS rows counted
    member_ids: set[str] | None = None
    timer: float | None = None  # due time of the group's live timer


def equalities_in_all(*groups: list[Matcher]) -> list[Matcher]:
    """Equality matchers every group has: safe dispatch keys for an OR of groups."""
    head, *rest = groups
    wanted = [{(m.name, m.value) for m in group if m.is_equality} for group in rest]
    return [m for m in head if m.is_equality and all((m.name, m.value) in w for w in wanted)]


def default_alert(spec: AlertSpec | None, summary: str, expire_after: float) -> AlertSpec:
    """The rule's `alert:` with the kind's defaults for what it leaves unset."""
    spec = spec or AlertSpec()
    update: dict[str, object] = {}
    if spec.summary is None:
        update["summary"] = summary
    if spec.expire_after is None:
        update["expire_after"] = expire_after
    return spec.model_copy(update=update) if update else spec


def group_text(names: list[str]) -> str:
    """A template naming each group value, e.g. ` for labels.site={{ group['labels.site'] }}`."""
    if not names:
        return ""
    return " for " + ", ".join(f"{n}={{{{ group[{n!r}] }}}}" for n in names)


class ThresholdOperator(Operator):
    state = ("_groups", "_raised_key")
    state_types = (_Group,)
    kind = "threshold"
    transitions = frozenset((CLEARED,))

    def __init__(self, spec: ThresholdRule) -> None:
        super().__init__(spec.name, spec)
        if spec.window <= 0:
            raise RuleFieldError(("window",), "window must be longer than 0s")
        if spec.clear_after is not None and spec.clear_after <= 0:
            raise RuleFieldError(("clear_after",), "clear_after must be longer than 0s")
        self._window = spec.window
        self._clear_after = spec.window if spec.clear_after is None else spec.clear_after
        self._count = spec.count
        self._cap = spec.max_groups
        self._names = list(spec.group_by)
        self._fields = FieldKey(spec.group_by)
        self._distinct = alert_getter(spec.distinct) if spec.distinct else None
        what = f"distinct {spec.distinct} values" if spec.distinct else "matching events"
        self._what = what
        summary = f"{{{{ count }}}} {what} within {format_duration(spec.window)}"
        self.alert_spec = SyntheticAlert(
            spec.name,
            default_alert(spec.alert, summary + group_text(self._names), self._clear_after),
        )
        scope = compile_matchers(spec.match)
        reset = compile_matchers(spec.reset_on)
        self._counts = self._counted(scope, when_alert(spec.when))
        self._is_reset = all_of([m.test for m in reset]) if reset else None
        self.event_filter = self._counts if self._is_reset is None else self._either()
        self.event_keys = equalities_in_all(scope, reset) if reset else self._eq(scope)
        if spec.when is None:  # a member's row stands for it: the trigger is the row anyway
            names = [m.name for m in (*scope, *reset)] + spec.group_by
            if spec.distinct:
                names.append(spec.distinct)
            self.event_reads = fields_read(names) | {"identifier", "type", "last_occurrence"}
        self._groups: dict[Key, _Group] = {}
        self._raised_key: dict[str, Key] = {}  # synthetic identifier → group

    @staticmethod
    def _eq(scope: list[Matcher]) -> list[Matcher]:
        return [m for m in scope if m.is_equality]

    @staticmethod
    def _counted(scope: list[Matcher], when: Predicate | None) -> Predicate:
        """Matching events; resolutions only when the rule's `match` names `type` itself."""
        preds = [m.test for m in scope]
        if not any(m.name == "type" for m in scope):
            preds.append(lambda occ: occ.type != RESOLUTION)
        if when is not None:
            preds.append(when)
        return all_of(preds)

    def _either(self) -> Predicate:
        counts, is_reset = self._counts, self._is_reset
        assert is_reset is not None
        return lambda occ: is_reset(occ) or counts(occ)

    def _desc(self, key: Key) -> str:
        return self._fields.describe(key) or "all events"

    # -- events --------------------------------------------------------------

    def on_event(self, occ: Alert, row: Alert | None, now: float, ctx: Context) -> None:
        key = self._fields.of(occ)
        at = occ.last_occurrence
        if self._is_reset is not None and self._is_reset(occ):
            self._reset(key, occ, at, now, ctx)
            return
        g = self._groups.get(key)
        if g is None:
            if len(self._groups) >= self._cap:
                ctx.count("cap_hit", self.name)
                return
            g = self._groups[key] = _Group(at)
        elif at < g.newest - self._window or at <= g.floor:
            ctx.count("late", self.name)  # its window has passed (or a reset discarded it)
            return
        if at > g.newest:
            g.newest = at
        if g.alert is not None:
            self._fold(key, g, occ, row, now, ctx)
            if g.timer is not None and g.alert is not None:
                return  # still raised: its deadline only moves later, the timer re-arms itself
        elif self._add(g, occ, at):
            self._raise(key, g, row or occ, now, ctx)
        self._arm(key, g, ctx)

    def _add(self, g: _Group, occ: Alert, at: float) -> bool:
        """Count one event into the window; True when the threshold is reached."""
        cutoff = g.newest - self._window
        if self._distinct is None:
            times = g.times
            if type(times) is not list:  # a deque, from a snapshot taken before it was a list
                times = g.times = list(times)
            if times and at < times[-1][0]:
                times.insert(_position(times, at), (at, occ.identifier))  # out of order
            else:
                times.append((at, occ.identifier))
            _drop_before(times, cutoff)
            return len(times) >= self._count
        value = as_text(self._distinct(occ))
        seen = g.seen
        if seen is None:
            seen = g.seen = {}
        known = seen.get(value)
        if known is None or at >= known[0]:
            seen[value] = (at, occ.identifier)
        if len(seen) >= self._count:  # only then can stale values change the answer
            seen = g.seen = {v: e for v, e in seen.items() if e[0] >= cutoff}
        return len(seen) >= self._count

    def _raise(self, key: Key, g: _Group, trigger: Alert, now: float, ctx: Context) -> None:
        seen = g.seen or {}
        entries = list(seen.values()) if self._distinct is not None else list(g.times)
        g.count = len(entries)
        g.values = set(seen) if self._distinct is not None else None
        g.times.clear()
        g.seen = None
        rows = [r for _, i in sorted(entries) if (r := ctx.table.get(i)) is not None]
        members: list[Alert] = []
        ids: set[str] = set()
        for row in rows:
            if row.identifier not in ids and len(members) < MAX_MEMBERS:
                members.append(row)
                ids.add(row.identifier)
        g.members, g.member_ids = members, ids
        span = format_duration(self._window)
        note = f"raised: {g.count} {self._what} within {span} for {self._desc(key)}"
        group = self._fields.pairs(key)
        alert = ctx.raise_alert(
            self, group, now, trigger=trigger, members=members, count=g.count, note=note
        )
        self._attach(key, g, alert)
        for row in rows:
            self._adopt(key, row, alert, now, ctx)

    def _fold(
        self, key: Key, g: _Group, occ: Alert, row: Alert | None, now: float, ctx: Context
    ) -> None:
        """A matching event while raised: one more occurrence of the synthetic alert.

        When neither the count nor the members change, nothing a template reads
        has changed either: the row just counts the occurrence (no re-render).
        """
        changed = False
        if self._distinct is None:
            g.count += 1
            changed = True
        else:
            value = self._distinct(occ)
            if type(value) is not str:
                value = as_text(value)
            values = g.values
            assert values is not None  # made at the raise
            if value not in values:
                if len(values) < MAX_VALUES:
                    values.add(value)
                    g.count = len(values)
                    changed = True
                else:
                    ctx.count("cap_hit", self.name)  # a new value the count cannot take
        members, ids = g.members, g.member_ids
        assert members is not None and ids is not None  # made at the raise
        if row is not None and row.identifier not in ids and len(members) < MAX_MEMBERS:
            members.append(row)
            ids.add(row.identifier)
            changed = True
        current = g.alert
        if (
            not changed
            and current is not None
            and current.status != STATUS_CLEARED  # a cleared alert is detached, deleted or not
        ):
            ctx.table.repeat(current, occ.last_occurrence, now)
            if row is not None and row.parent != current.identifier:
                self._adopt(key, row, current, now, ctx)
            return
        alert = ctx.raise_alert(
            self, self._fields.pairs(key), now, trigger=row or occ, members=members, count=g.count
        )
        if alert is not g.alert:  # the row was replaced (deleted and raised anew)
            self._attach(key, g, alert)
        if row is not None and row.parent != alert.identifier:  # else adopted: no call
            self._adopt(key, row, alert, now, ctx)

    def _adopt(self, key: Key, row: Alert, alert: Alert, now: float, ctx: Context) -> None:
        """Point a member at the synthetic alert, unless another open parent holds it."""
        if row.parent == alert.identifier or row is alert:
            return
        if row.parent is not None:
            other = ctx.table.get(row.parent)
            if other is not None and other.status != STATUS_CLEARED:
                return
        why = f"parent set to {alert.identifier}: counted for {self._desc(key)}"
        ctx.set_parent(row, ParentLink(alert.identifier, self.name, self.kind), now, self.name, why)

    def _reset(self, key: Key, occ: Alert, at: float, now: float, ctx: Context) -> None:
        """Discard the group's count up to the reset's time; clear a raised alert it postdates."""
        g = self._groups.get(key)
        if g is None:
            return
        g.floor = max(g.floor, at)
        if g.alert is not None and at >= g.newest:
            alert = self._detach(g)
            ctx.clear(alert, now, self.name, f"reset by {occ.identifier}")
        g.times = [entry for entry in g.times if entry[0] > at]
        if g.seen:
            g.seen = {v: e for v, e in g.seen.items() if e[0] > at}
        self._arm(key, g, ctx)

    # -- timers and transitions ------------------------------------------------

    def _deadline(self, g: _Group) -> float:
        if g.alert is not None:
            return g.newest + self._clear_after
        return max(g.newest, g.floor) + self._window

    def _arm(self, key: Key, g: _Group, ctx: Context) -> None:
        due = self._deadline(g)
        if g.timer is None or due < g.timer:
            g.timer = due
            ctx.schedule(due, self, key)

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        """Clear a raised alert after `clear_after` of silence; forget an idle group."""
        assert isinstance(key, tuple)
        g = self._groups.get(key)
        if g is None or g.timer != now:
            return  # stale: the group is gone or has an earlier timer of its own
        g.timer = None
        if self._deadline(g) > now:
            self._arm(key, g, ctx)
            return
        if g.alert is not None:
            alert = self._detach(g)
            quiet = format_duration(self._clear_after)
            ctx.clear(alert, now, self.name, f"no matching event for {quiet} ({self._desc(key)})")
        del self._groups[key]

    def _attach(self, key: Key, g: _Group, alert: Alert) -> None:
        if g.alert is not None:
            self._raised_key.pop(g.alert.identifier, None)
        g.alert = alert
        self._raised_key[alert.identifier] = key

    def _detach(self, g: _Group) -> Alert:
        """End the group's episode; the next matching event starts counting afresh."""
        alert = g.alert
        assert alert is not None
        self._raised_key.pop(alert.identifier, None)
        g.alert = None
        g.count = 0
        g.values = g.members = g.member_ids = None
        return alert

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        """Our alert was cleared by someone else (operator, expiry): the episode ends."""
        key = self._raised_key.get(alert.identifier)
        if key is None:
            return
        g = self._groups.get(key)
        if g is not None and g.alert is alert:
            self._detach(g)
            alert.note(now, self.name, f"{self.name} counts afresh for {self._desc(key)}")

    def size(self) -> int:
        return len(self._groups)


def _drop_before(times: list[tuple[float, str]], cutoff: float) -> None:
    """Drop the entries older than `cutoff` (one slice: a window can be long)."""
    n = 0
    while n < len(times) and times[n][0] < cutoff:
        n += 1
    if n:
        del times[:n]


def _position(times: Sequence[tuple[float, str]], at: float) -> int:
    """Where a late event goes: after every entry at or before `at` (searching from the end)."""
    i = len(times)
    while i and times[i - 1][0] > at:
        i -= 1
    return i


def build(spec: ThresholdRule, env: BuildEnv) -> ThresholdOperator:
    return ThresholdOperator(spec)
