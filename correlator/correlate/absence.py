"""`kind: absence` — a dead-man switch: silence for `for:` raises an alert.

Every `group_by` value that has sent a matching event (a heartbeat, a
Prometheus `Watchdog`, a batch job's "done") is watched; when no matching
event arrives for `for`, the rule raises its `alert:` (at last event + `for`).
The next matching event of the group clears it. Alertmanager's answer to this
is an always-firing alert plus an external dead-man's-snitch service; SEC's is
`PairWithWindow` on the heartbeat itself; here it is one rule.

A group is known from its first matching event, so a source that never
reported is invisible; `expect:` lists groups that must report anyway: they
are watched from rule load (the first time the engine runs after the rule was
loaded or changed), which also covers a restart that lost the watch state.

One timer per group, re-armed when it fires. A group whose alert someone else
clears (operator, `expire_after`) is forgotten until it reports again — unless
it is expected, in which case the silence is timed again from the clear.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from correlator.correlate.base import CLEARED, BuildEnv, Context, Operator
from correlator.correlate.grouping import FieldKey
from correlator.correlate.synthetic import SyntheticAlert
from correlator.errors import RuleFieldError
from correlator.model import CLEARED as STATUS_CLEARED
from correlator.model import Alert
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import all_of, as_text, compile_matchers
from correlator.ruleset.paths import last_segment
from correlator.ruleset.schema import AlertSpec, Duration, Rule, Scalar
from correlator.timeparse import format_duration

Key = tuple[str, ...]
Text = Annotated[
    str,
    BeforeValidator(
        lambda v: as_text(v) if isinstance(v, int | float) else v, json_schema_input_type=Scalar
    ),
]


class AbsenceRule(Rule):
    kind: Literal["absence"]
    group_by: list[str] = []
    for_: Duration = Field(alias="for")
    expect: list[dict[str, Text]] = []
    alert: AlertSpec | None = None
    max_groups: int = Field(100_000, ge=1)


@dataclass(slots=True)
class _Watch:
    """One watched group: its newest event, and the alert raised for its silence."""

    group: list[tuple[str, str]]
    last: float  # newest matching event time (rule load time for an unseen expected group)
    trigger: Alert | None  # the newest matching event, for templates (None: never seen)
    expected: bool
    alert: Alert | None = None
    timer: float | None = None  # due time of the watch's live timer


def _default_alert(spec: AlertSpec | None, names: list[str], silence: str) -> AlertSpec:
    """The `alert:` with this kind's defaults: severity major, a summary naming the group."""
    spec = spec or AlertSpec()
    update: dict[str, object] = {}
    if spec.severity is None:
        update["severity"] = "major"  # not the heartbeat's own (usually harmless) severity
    if spec.summary is None:
        where = ", ".join(f"{n}={{{{ group[{n!r}] }}}}" for n in names)
        update["summary"] = f"no matching event for {silence}" + (f" from {where}" if where else "")
    return spec.model_copy(update=update) if update else spec


def _expected_keys(spec: AbsenceRule) -> list[Key]:
    """`expect:` entries as group keys; each must name every `group_by` entry and nothing else."""
    keys: list[Key] = []
    for i, entry in enumerate(spec.expect):
        by_name: dict[str, str] = {}
        for name, value in entry.items():
            full = next((g for g in spec.group_by if name in (g, last_segment(g))), None)
            if full is None:
                message = f"expect[{i}]: {name!r} is not in group_by {spec.group_by}"
                raise RuleFieldError(("expect", i, name), message)
            by_name[full] = value
        missing = [g for g in spec.group_by if g not in by_name]
        if missing:
            raise RuleFieldError(("expect", i), f"expect[{i}]: no value for {', '.join(missing)}")
        keys.append(tuple(by_name[g] for g in spec.group_by))
    return keys


class AbsenceOperator(Operator):
    state = ("_watches", "_raised_key")
    state_types = (_Watch,)
    kind = "absence"
    transitions = frozenset((CLEARED,))

    def __init__(self, spec: AbsenceRule) -> None:
        super().__init__(spec.name, spec)
        if spec.for_ <= 0:
            raise RuleFieldError(("for",), "for must be longer than 0s")
        if spec.expect and not spec.group_by:
            raise ValueError("expect needs group_by (without it the rule has one group)")
        self._for = spec.for_
        self._cap = spec.max_groups
        self._names = list(spec.group_by)
        self._fields = FieldKey(spec.group_by)
        self._expected = _expected_keys(spec)
        silence = format_duration(spec.for_)
        self.alert_spec = SyntheticAlert(
            spec.name, _default_alert(spec.alert, self._names, silence)
        )
        scope = compile_matchers(spec.match)
        when = when_alert(spec.when)
        self.event_filter = all_of([m.test for m in scope] + ([when] if when else []))
        self.event_keys = [m for m in scope if m.is_equality]
        self._watches: dict[Key, _Watch] = {}
        self._raised_key: dict[str, Key] = {}  # synthetic identifier → group

    def _desc(self, w: _Watch) -> str:
        return ", ".join(f"{n}={v}" for n, v in w.group) or "the rule"

    def start(self, now: float, ctx: Context) -> None:
        """Watch the `expect:` groups from rule load, as if each had reported at `now`."""
        for key in self._expected:
            w = self._watches.get(key)
            if w is None:
                w = self._watches[key] = _Watch(self._fields.pairs(key), now, None, True)
            w.expected = True
            self._arm(key, w, ctx)

    # -- events --------------------------------------------------------------

    def on_event(self, occ: Alert, row: Alert | None, now: float, ctx: Context) -> None:
        key = self._fields.of(occ)
        at = occ.last_occurrence
        w = self._watches.get(key)
        if w is None:
            if len(self._watches) >= self._cap:
                ctx.count("cap_hit", self.name)
                return
            w = self._watches[key] = _Watch(self._fields.pairs(key), at, occ, False)
            self._clear_leftover(w, occ, now, ctx)
        elif w.trigger is not None and at <= w.last:
            ctx.count("late", self.name)  # says nothing about the time after `last`
            return
        else:
            first = w.trigger is None  # an expected group's first event since the rule loaded
            silence = None if first else at - w.last
            w.last = max(w.last, at)
            w.trigger = occ
            if w.alert is not None:
                self._clear(key, w, occ, silence, now, ctx)
            elif first:
                self._clear_leftover(w, occ, now, ctx)
        self._arm(key, w, ctx)

    def _clear(
        self, key: Key, w: _Watch, occ: Alert, silence: float | None, now: float, ctx: Context
    ) -> None:
        alert = w.alert
        assert alert is not None
        self._raised_key.pop(alert.identifier, None)
        w.alert = None
        after = f" after {format_duration(silence)} of silence" if silence is not None else ""
        ctx.clear(alert, now, self.name, f"{occ.identifier} received{after}")

    def _clear_leftover(self, w: _Watch, occ: Alert, now: float, ctx: Context) -> None:
        """An open alert of ours for a group we did not know: raised before a restart or reload."""
        identifier = self.alert_spec.identifier_for(w.group, occ, (), 0)
        row = ctx.table.get(identifier)
        if row is not None and row.agent == self.name and row.status != STATUS_CLEARED:
            why = f"{occ.identifier} received (alert raised before the rule's state was reset)"
            ctx.clear(row, now, self.name, why)

    # -- timers and transitions ------------------------------------------------

    def _arm(self, key: Key, w: _Watch, ctx: Context) -> None:
        due = w.last + self._for
        if w.alert is None and (w.timer is None or due < w.timer):
            w.timer = due
            ctx.schedule(due, self, key)

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        """Raise when the group's silence has lasted `for`; re-arm if it reported since."""
        assert isinstance(key, tuple)
        w = self._watches.get(key)
        if w is None or w.timer != now:
            return  # stale: the watch is gone or has an earlier timer of its own
        w.timer = None
        if w.alert is not None:
            return
        if w.last + self._for > now:
            self._arm(key, w, ctx)
            return
        self._raise(key, w, now, ctx)

    def _raise(self, key: Key, w: _Watch, now: float, ctx: Context) -> None:
        seen = w.trigger is not None
        extra: dict[str, Any] = {"last_seen": w.last if seen else None}
        silence = format_duration(self._for)
        if w.trigger is not None:
            last = f"last one {w.trigger.identifier} at {_moment(w.last)}"
        else:
            last = f"none since the rule was loaded at {_moment(w.last)}"
        note = f"raised: no matching event for {silence} from {self._desc(w)} ({last})"
        alert = ctx.raise_alert(
            self, w.group, now, trigger=w.trigger, count=0, extra=extra, note=note
        )
        w.alert = alert
        self._raised_key[alert.identifier] = key

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        """Our alert was cleared by someone else: forget the group (re-time it if expected)."""
        key = self._raised_key.pop(alert.identifier, None)
        w = self._watches.get(key) if key is not None else None
        if key is None or w is None or w.alert is not alert:
            return
        w.alert = None
        if w.expected:
            w.last = now
            self._arm(key, w, ctx)
            alert.note(now, self.name, f"expected group {self._desc(w)}: silence timed from now")
        else:
            del self._watches[key]
            alert.note(now, self.name, f"{self._desc(w)} forgotten until it reports again")

    def size(self) -> int:
        return len(self._watches)


def _moment(at: float) -> str:
    """An event time for journals: RFC 3339 in UTC."""
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def build(spec: AbsenceRule, env: BuildEnv) -> AbsenceOperator:
    return AbsenceOperator(spec)
