"""`kind: clear` — a resolution clears every open problem with equal `on` fields.

The generic clear across identifiers (Netcool's generic-clear automation): a
`LinkUp` on `node, alertkey` clears the `LinkDown` row of the same interface
even though the two have different identifiers. Open problems are indexed by
their `on` values, so a resolution costs one dict lookup. The index follows
field changes (a minor that becomes critical can come to match `problem:`, a
relabelled row moves to its new `on` values), and is built from the table when
the engine starts the rule (one pass per load), so a rule added or changed by
a reload clears problems already open.

Event time, not arrival order, decides: every resolution is remembered by its
`on` values for the engine's `max_lateness` (the newest per values, bounded),
so a problem stamped at or before it that arrives later (reordered across
partitions) is cleared as soon as it is filed; the table remembers the clear
too, so an older problem of a cleared row does not reopen it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final, Literal

from correlator.correlate.base import (
    CLEARED,
    CREATED,
    DELETED,
    MODIFIED,
    REOPENED,
    UPDATED,
    BuildEnv,
    Context,
    Operator,
)
from correlator.correlate.grouping import FieldKey
from correlator.model import CLEARED as CLEARED_STATUS
from correlator.model import PROBLEM, RESOLUTION, Alert
from correlator.ruleset.expr import when_alert
from correlator.ruleset.matchers import all_of, compile_matchers
from correlator.ruleset.schema import FieldNames, Matchers, Rule


class ClearRule(Rule):
    kind: Literal["clear"]
    problem: Matchers
    resolution: Matchers
    on: FieldNames


# Fields no rule changes on a row (`modified`); a new occurrence may change `type`.
_FIXED: Final = frozenset(("identifier", "node", "alertgroup", "alertkey", "manager", "agent"))
MAX_REMEMBERED: Final = 100_000  # `on` values with a remembered resolution; past it: cap_hit


@dataclass(slots=True)
class _Seen:
    """The newest resolution of some `on` values, kept for problems delivered after it."""

    at: float
    identifier: str
    until: float


class ClearOperator(Operator):
    state = ("_open", "_key_of", "_seen")
    state_types = (_Seen,)
    kind = "clear"
    transitions = frozenset((CREATED, REOPENED, UPDATED, MODIFIED, CLEARED, DELETED))
    clears_on_transition = True

    def __init__(self, spec: ClearRule, max_lateness: float = 300.0) -> None:
        super().__init__(spec.name, spec)
        problem = compile_matchers(spec.problem)
        resolution = compile_matchers(spec.resolution)
        scope = compile_matchers(spec.match)
        when = when_alert(spec.when)
        extra = [when] if when is not None else []
        self._is_problem = all_of([*(m.test for m in (*scope, *problem)), *extra])
        self.event_filter = all_of([*(m.test for m in (*scope, *resolution)), *extra])
        self.event_keys = [m for m in (*scope, *resolution) if m.is_equality]
        self._on = FieldKey(spec.on)
        reads = {m.name for m in (*scope, *problem)} | set(spec.on)
        if when is None and reads <= _FIXED:  # rules' changes cannot move the row: skip them
            self.transitions = self.transitions - {MODIFIED}
        # Mostly one problem per key, filed as itself: a list only for two or more
        # (a storm files one row per key, and a list of one costs a hundred bytes).
        self._open: dict[tuple[str, ...], Alert | list[Alert]] = {}
        self._key_of: dict[str, tuple[str, ...]] = {}
        self._seen: dict[tuple[str, ...], _Seen] = {}
        self._keep = max_lateness

    def start(self, now: float, ctx: Context) -> None:
        """(Re)build the index from the open rows: a new or changed rule clears them too."""
        self._open.clear()
        self._key_of.clear()
        for alert in ctx.table.rows.values():
            if alert.status != CLEARED_STATUS:
                self._index(alert, self._key(alert))

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        key = None
        if alert.status != CLEARED_STATUS and transition != DELETED:
            key = self._key(alert)
        if key == self._key_of.get(alert.identifier):
            return  # mostly equal: nothing to move
        self._index(alert, key)
        if key is None:
            return
        seen = self._seen.get(key)  # a resolution stamped after it, delivered before it
        if seen is not None and alert.last_occurrence <= seen.at:
            why = f"resolution {seen.identifier} on {self._on.describe(key)} (delivered first)"
            ctx.clear(alert, now, self.name, why, at=seen.at)

    def _key(self, alert: Alert) -> tuple[str, ...] | None:
        """The `on` values an open row is filed under, or None when it is no problem of ours."""
        if alert.type == PROBLEM and self._is_problem(alert):
            return self._on.of(alert)
        return None

    def _index(self, alert: Alert, key: tuple[str, ...] | None) -> None:
        """File the row under `key` (None: nowhere), out of where it was."""
        ident = alert.identifier
        old = self._key_of.get(ident)
        if old is not None:
            del self._key_of[ident]
            rest = [a for a in self._filed(old) if a.identifier != ident]
            if len(rest) > 1:
                self._open[old] = rest
            elif rest:
                self._open[old] = rest[0]
            else:
                del self._open[old]
        if key is not None:
            filed = self._open.get(key)
            if filed is None:
                self._open[key] = alert
            elif isinstance(filed, list):
                filed.append(alert)
            else:
                self._open[key] = [filed, alert]
            self._key_of[ident] = key

    def _filed(self, key: tuple[str, ...]) -> list[Alert]:
        """The open problems filed under `key`, oldest first (a new list)."""
        filed = self._open.get(key)
        if filed is None:
            return []
        return list(filed) if isinstance(filed, list) else [filed]

    def on_event(self, occ: Alert, row: Alert | None, now: float, ctx: Context) -> None:
        if occ.type != RESOLUTION:
            return
        key = self._on.of(occ)
        at = occ.last_occurrence
        self._remember(key, occ, now, ctx)
        for problem in self._filed(key):
            if at < problem.last_occurrence:
                continue  # an old resolution never clears a newer problem
            why = f"resolution {occ.identifier} on {self._desc(occ)}"
            ctx.clear(problem, now, self.name, why, at=at)

    def _remember(self, key: tuple[str, ...], occ: Alert, now: float, ctx: Context) -> None:
        """Keep the newest resolution of `key` for `max_lateness` after it arrived."""
        at = occ.last_occurrence
        seen = self._seen.get(key)
        if seen is not None and seen.at > at:
            return  # the newer one clears whatever this one would
        if seen is None and len(self._seen) >= MAX_REMEMBERED:
            ctx.count("cap_hit", self.name)
            return
        until = max(at, now) + self._keep
        self._seen[key] = _Seen(at, occ.identifier, until)
        ctx.schedule(until, self, key)

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        """Forget a resolution once no problem stamped before it can still arrive."""
        assert isinstance(key, tuple)
        seen = self._seen.get(key)
        if seen is not None and seen.until <= now:
            del self._seen[key]

    def _desc(self, occ: Alert) -> str:
        return self._on.describe(self._on.of(occ))

    def size(self) -> int:
        return len(self._key_of) + len(self._seen)


def build(spec: ClearRule, env: BuildEnv) -> ClearOperator:
    return ClearOperator(spec, env.max_lateness)
