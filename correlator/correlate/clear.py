"""`kind: clear` — a resolution clears every open problem with equal `on` fields.

The generic clear across identifiers (Netcool's generic-clear automation): a
`LinkUp` on `node, alertkey` clears the `LinkDown` row of the same interface
even though the two have different identifiers. Open problems are indexed by
their `on` values, so a resolution costs one dict lookup. The index follows
field changes (a minor that becomes critical can come to match `problem:`, a
relabelled row moves to its new `on` values), and is built from the table when
the engine starts the rule (one pass per load), so a rule added or changed by
a reload clears problems already open.
"""

from __future__ import annotations

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


class ClearOperator(Operator):
    kind = "clear"
    transitions = frozenset((CREATED, REOPENED, UPDATED, MODIFIED, CLEARED, DELETED))

    def __init__(self, spec: ClearRule) -> None:
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
        self._open: dict[tuple[str, ...], list[Alert]] = {}  # mostly one problem per key
        self._key_of: dict[str, tuple[str, ...]] = {}

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
        if key != self._key_of.get(alert.identifier):  # mostly equal: nothing to move
            self._index(alert, key)

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
            bucket = self._open[old]
            bucket[:] = [a for a in bucket if a.identifier != ident]
            if not bucket:
                del self._open[old]
        if key is not None:
            self._open.setdefault(key, []).append(alert)
            self._key_of[ident] = key

    def on_event(self, occ: Alert, row: Alert | None, now: float, ctx: Context) -> None:
        if occ.type != RESOLUTION:
            return
        bucket = self._open.get(self._on.of(occ))
        if not bucket:
            return
        for problem in list(bucket):
            if occ.last_occurrence < problem.last_occurrence:
                continue  # an old resolution never clears a newer problem
            ctx.clear(problem, now, self.name, f"resolution {occ.identifier} on {self._desc(occ)}")

    def _desc(self, occ: Alert) -> str:
        return self._on.describe(self._on.of(occ))

    def size(self) -> int:
        return len(self._key_of)


def build(spec: ClearRule, env: BuildEnv) -> ClearOperator:
    return ClearOperator(spec)
