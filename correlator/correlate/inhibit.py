"""`inhibit_rules` — Alertmanager inhibition: an open source alert mutes matching targets.

While an alert matching the source side is open, every open alert matching the
target side whose `equal` labels have the same values is suppressed by the
rule (`suppressed_by`); when the last such source clears, the targets are
released. Alertmanager's rules hold: a missing `equal` label reads as "" (so
missing on both sides counts as equal), and an alert that matches both sides
cannot be inhibited by an alert that also matches both sides (itself included).
Matchers and `equal` read the alert's Alertmanager label view (`labelview.py`),
so a pasted block compares what Alertmanager compared.

Sources and targets are indexed by their `equal` values, so an alert arriving
or clearing costs one dict probe, and only the targets of a group whose source
state flipped are touched. Order does not matter: a source that opens after its
targets suppresses them, a target that opens under an open source is suppressed
at once. A target that clears keeps its `suppressed_by` as the record of why
nobody was told; it is released if it reopens with no source left.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import AfterValidator, BeforeValidator, Field, field_validator

from correlator.correlate.base import (
    ACKNOWLEDGED,
    CLEARED,
    CREATED,
    DELETED,
    MODIFIED,
    REOPENED,
    UPDATED,
    BuildEnv,
    Context,
    Operator,
    Shared,
)
from correlator.model import CLEARED as CLEARED_STATUS
from correlator.model import Alert
from correlator.ruleset.labelview import label_key, label_matcher, parse_label_matchers
from correlator.ruleset.matchers import Matcher, all_of
from correlator.ruleset.regex import check as check_regex
from correlator.ruleset.schema import OneOrMany, RuleName, Scalar, Strict

Key: TypeAlias = tuple[str, ...]


# -- Alertmanager matcher syntax, on the label view ----------------------------


def _check_line(line: str) -> str:
    parse_label_matchers(line)
    return line


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _text(value: Any) -> Any:
    """YAML `code: 500` is the label value "500", as in Alertmanager."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


MatcherLines = Annotated[
    list[Annotated[str, AfterValidator(_check_line)]],
    BeforeValidator(_one_or_many, json_schema_input_type=OneOrMany),
]


def _check_regex(value: str) -> str:
    """Checked per entry, so an error points at the entry's line, not at the map."""
    check_regex(value)
    return value


LabelText = Annotated[str, BeforeValidator(_text, json_schema_input_type=Scalar)]
LabelMap = dict[str, LabelText]
RegexMap = dict[str, Annotated[LabelText, AfterValidator(_check_regex)]]


class InhibitRule(Strict):
    """One entry of `inhibit_rules`, Alertmanager's keys plus an optional name and cap."""

    name: RuleName | None = None
    source_matchers: MatcherLines = []
    target_matchers: MatcherLines = []
    source_match: LabelMap = {}
    target_match: LabelMap = {}
    source_match_re: RegexMap = {}
    target_match_re: RegexMap = {}
    equal: list[str] = []
    max_alerts: int = Field(100_000, ge=1)

    @field_validator("source_match", "target_match", "source_match_re", "target_match_re")
    @classmethod
    def _check_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            label_matcher(name, "=", "")
        return value

    def rule_name(self) -> str:
        """The given name, or `inhibit-<hash>` of the rule's content.

        Pasted Alertmanager blocks have no name. A content hash is stable across
        reloads, file moves and reordering; a changed rule gets a new name,
        which is what a changed rule means for its state anyway.
        """
        if self.name:
            return self.name
        content = self.model_dump(mode="json", exclude={"name"}, exclude_defaults=True)
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return "inhibit-" + hashlib.sha256(canonical.encode()).hexdigest()[:10]

    def side(self, which: Literal["source", "target"]) -> list[Matcher]:
        """Every matcher of one side: `*_matchers` lines, then `*_match`, then `*_match_re`.

        Legacy map values are taken literally, as Alertmanager does (no quoting).
        """
        lines: list[str] = getattr(self, f"{which}_matchers")
        equal: dict[str, str] = getattr(self, f"{which}_match")
        regex: dict[str, str] = getattr(self, f"{which}_match_re")
        matchers = [m for line in lines for m in parse_label_matchers(line)]
        matchers += [label_matcher(name, "=", value) for name, value in equal.items()]
        matchers += [label_matcher(name, "=~", value) for name, value in regex.items()]
        return matchers


class InhibitKindRule(InhibitRule):
    """The same rule written under `correlate:` with `kind: inhibit` (a name is required)."""

    kind: Literal["inhibit"]
    name: RuleName


# -- the operator -------------------------------------------------------------


@dataclass(slots=True)
class _Sources:
    """Open source alerts with one set of `equal` values."""

    one: dict[str, Alert] = field(default_factory=dict)  # match the source side only
    two: dict[str, Alert] = field(default_factory=dict)  # match both sides
    where: str = ""  # `equal ...` for journal notes, described once per bucket

    def state(self) -> tuple[bool, bool]:
        return bool(self.one), bool(self.two)

    def holder(self, two_sided_target: bool) -> Alert | None:
        """A source that inhibits a target (Alertmanager's two-sided exclusion)."""
        for found in self.one.values():
            return found  # the oldest one-sided source
        if not two_sided_target:
            for found in self.two.values():
                return found
        return None


@dataclass(slots=True, eq=False)
class _Member:
    """What the rule knows of a tracked alert; never changed, replaced when it changes."""

    key: Key
    source: bool
    target: bool


class InhibitOperator(Operator):
    state = ("_members", "_sources", "_targets", "_held")
    state_types = (_Sources, _Member)
    kind = "inhibit"
    # acknowledged too: matchers may read `status` (`status="open"`: only unhandled alerts)
    transitions = frozenset((CREATED, REOPENED, UPDATED, MODIFIED, ACKNOWLEDGED, CLEARED, DELETED))

    def __init__(self, spec: InhibitRule) -> None:
        super().__init__(spec.rule_name(), spec)
        self._is_source = all_of([m.test for m in spec.side("source")])
        self._is_target = all_of([m.test for m in spec.side("target")])
        self._equal_names = tuple(spec.equal)
        self._key = label_key(spec.equal)
        self._cap = spec.max_alerts
        self._members: dict[str, _Member] = {}
        self._sources: dict[Key, _Sources] = {}
        self._targets: dict[Key, dict[str, Alert]] = {}
        self._held: set[str] = set()  # targets this rule suppresses (kept while cleared)
        self._keys: Shared[Key, Key] = Shared()  # one tuple per `equal` values, not per alert

    def start(self, now: float, ctx: Context) -> None:
        """(Re)build the index from the open rows: a new or changed rule knows them at once.

        The index is derived from the table, so it is rebuilt whenever an engine
        starts running the rule (one pass per load, never per event). Sources go
        first, so targets already held stay held without a release/suppress flap.
        """
        self._members.clear()
        self._sources.clear()
        self._targets.clear()
        self._held.clear()
        rows = [alert for alert in ctx.table.rows.values() if alert.status != CLEARED_STATUS]
        rows.sort(key=lambda alert: not self._is_source(alert))
        for alert in rows:
            self.on_transition(CREATED, alert, now, ctx)

    def _classify(self, alert: Alert, old: _Member | None) -> _Member | None:
        """The alert's membership now, or None; `old` itself when it is unchanged.

        Most calls are an update or a note of a row whose membership stands:
        returning `old` then lets the caller stop without allocating anything.
        """
        if alert.status == CLEARED_STATUS:
            return None
        source = self._is_source(alert)
        target = self._is_target(alert)
        if not (source or target):
            return None
        key = self._key(alert)
        if old is not None and old.key == key and old.source == source and old.target == target:
            return old
        return _Member(self._keys.get(key) or self._keys.keep(key, key), source, target)

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        ident = alert.identifier
        old = self._members.get(ident)
        deleted = transition == DELETED
        if deleted:
            self._held.discard(ident)  # the engine dropped its suppressors with the row
            new = None
        else:
            new = self._classify(alert, old)
        if new is old:
            if old is None and ident in self._held and alert.status != CLEARED_STATUS:
                self._settle(alert, now, ctx)  # held while cleared, reopened as no target
            return  # unchanged membership (or none, before and after)
        if old is None and len(self._members) >= self._cap:
            self.refused(transition, ctx)
            return
        flipped: set[Key] = set()
        if old is not None:
            self._leave(ident, old, flipped)
        if new is not None:
            self._join(alert, new, flipped)
        if not deleted:
            self._settle(alert, now, ctx)
        for key in flipped:
            for target in list(self._targets.get(key, {}).values()):
                self._settle(target, now, ctx)

    def _join(self, alert: Alert, member: _Member, flipped: set[Key]) -> None:
        ident = alert.identifier
        self._members[ident] = member
        if member.source:
            bucket = self._sources.setdefault(member.key, _Sources())
            before = bucket.state()
            (bucket.two if member.target else bucket.one)[ident] = alert
            if bucket.state() != before:
                flipped.add(member.key)
        if member.target:
            self._targets.setdefault(member.key, {})[ident] = alert

    def _leave(self, ident: str, member: _Member, flipped: set[Key]) -> None:
        del self._members[ident]
        if member.source:
            bucket = self._sources[member.key]
            before = bucket.state()
            (bucket.two if member.target else bucket.one).pop(ident, None)
            if bucket.state() != before:
                flipped.add(member.key)
            if not (bucket.one or bucket.two):
                del self._sources[member.key]
        if member.target:
            targets = self._targets[member.key]
            targets.pop(ident, None)
            if not targets:
                del self._targets[member.key]

    def _settle(self, alert: Alert, now: float, ctx: Context) -> None:
        """Suppress or release one alert so it agrees with the current sources."""
        ident = alert.identifier
        member = self._members.get(ident)
        bucket = holder = None
        if member is not None and member.target:
            bucket = self._sources.get(member.key)
            if bucket is not None:
                holder = bucket.holder(member.source)
        # A suppression under this name made before a reload that changed the rule
        # is taken over, so it can be released.
        held = ident in self._held or self.holds(alert, ctx)
        if holder is not None and held and ident not in self._held:
            self._held.add(ident)  # claim it, so the engine does not release it
            ctx.suppress(alert, now, self.name, "taken over by the reloaded rule")
        elif holder is not None and not held:
            self._held.add(ident)
            where = ""
            if bucket is not None and member is not None:  # always, with a holder
                where = bucket.where = bucket.where or self._describe(member.key)
            ctx.suppress(alert, now, self.name, f"inhibited by {holder.identifier} ({where})")
        elif holder is None and held and alert.status != CLEARED_STATUS:
            self._held.discard(ident)
            why = (
                f"no open source alert left ({self._describe(member.key)})"
                if member is not None and member.target
                else "no longer matches the target matchers"
            )
            ctx.unsuppress(alert, now, self.name, why)

    def _describe(self, key: Key) -> str:
        if not key:
            return "no equal labels"
        pairs = zip(self._equal_names, key, strict=True)
        return "equal " + ", ".join(f"{name}={value!r}" for name, value in pairs)

    def size(self) -> int:
        return len(self._members)


def build_rule(spec: InhibitRule, env: BuildEnv) -> InhibitOperator:
    """An operator for one `inhibit_rules` entry."""
    return InhibitOperator(spec)


def build(spec: InhibitKindRule, env: BuildEnv) -> InhibitOperator:
    """An operator for a `kind: inhibit` rule under `correlate:`."""
    return InhibitOperator(spec)
