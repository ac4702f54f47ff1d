"""Silences, as Alertmanager has them: matchers that mute alerts from `startsAt` to `endsAt`.

Operators add, change and expire silences through the API (or amtool); each
of those is an input the pipeline journals, so a restart restores them
exactly and replay shows what they did. A silence is pending before its
start, active until its end, then expired (kept five days, as Alertmanager
keeps them, then forgotten). While active it suppresses every row whose label
view its matchers match, as `silence:<id>` among the row's suppressors (with
a journal note naming who silenced it and why), and lets it go when it ends
or the row stops matching. Like inhibition, a silence only keeps
notifications back: rules go on seeing the row.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from correlator.correlate.base import (
    CREATED,
    DELETED,
    MODIFIED,
    REOPENED,
    UPDATED,
    Context,
    Operator,
)
from correlator.model import CLEARED, Alert
from correlator.ruleset.labelview import label_matcher
from correlator.ruleset.matchers import Matcher

KEEP_EXPIRED: Final = 5 * 86400.0  # Alertmanager's default retention
TRANSITIONS: Final = frozenset((CREATED, UPDATED, REOPENED, MODIFIED, DELETED))
PREFIX: Final = "silence:"  # a silence among a row's suppressors


@dataclass(slots=True, eq=False)
class Silence:
    id: str
    matchers: list[dict[str, Any]]  # Alertmanager's: name, value, isRegex, isEqual
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float
    held: set[str] = field(default_factory=set)  # rows it suppresses now

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"


def compile_matchers(matchers: list[dict[str, Any]]) -> list[Matcher]:
    """Alertmanager's matcher objects as label-view matchers; ValueError if one is bad."""
    if not matchers:
        raise ValueError("a silence needs at least one matcher")
    out = []
    for m in matchers:
        if not isinstance(m, dict) or not isinstance(m.get("name"), str):
            raise ValueError(f"bad matcher {m!r}: needs name and value")
        regex, equal = bool(m.get("isRegex", False)), bool(m.get("isEqual", True))
        op = ("=~" if equal else "!~") if regex else ("=" if equal else "!=")
        out.append(label_matcher(m["name"], op, str(m.get("value", ""))))
    return out


class Silences(Operator):
    """Every silence of the engine; kept across reloads (silences are not rules)."""

    kind: ClassVar[str] = "silences"
    state = ("by_id",)
    state_types = (Silence,)

    def __init__(self) -> None:
        super().__init__("#silences", None)
        self.by_id: dict[str, Silence] = {}
        self._compiled: dict[str, list[Matcher]] = {}

    def size(self) -> int:
        return len(self.by_id)

    def restored(self) -> None:
        """After a snapshot loaded `by_id`: compile the matchers again."""
        self._compiled = {sid: compile_matchers(s.matchers) for sid, s in self.by_id.items()}

    # -- the operators' side ----------------------------------------------------------

    def check(self, spec: dict[str, Any], now: float) -> None:
        """ValueError when `put` would refuse the spec (before anything changes)."""
        self._parse(spec, now)

    def _parse(
        self, spec: dict[str, Any], now: float
    ) -> tuple[str, list[dict[str, Any]], list[Matcher], float, float]:
        sid = str(spec.get("id") or "")
        if not sid:
            raise ValueError("a silence needs an id")
        matchers = list(spec.get("matchers") or [])
        compiled = compile_matchers(matchers)
        starts, ends = float(spec["startsAt"]), float(spec["endsAt"])
        if ends <= starts:
            raise ValueError("endsAt must be after startsAt")
        if ends <= now:
            raise ValueError("endsAt is in the past")
        return sid, matchers, compiled, starts, ends

    def put(self, spec: dict[str, Any], now: float, ctx: Context) -> None:
        """Add a silence or change one (same `id`); ValueError when the spec is bad."""
        sid, matchers, compiled, starts, ends = self._parse(spec, now)
        old = self.by_id.get(sid)
        if old is not None:
            self._release(old, now, ctx, "the silence was changed")
        silence = Silence(sid, matchers, starts, ends, str(spec.get("createdBy", "")),
                          str(spec.get("comment", "")), now)  # fmt: skip
        self.by_id[sid] = silence
        self._compiled[sid] = compiled
        if starts > now:
            ctx.schedule(starts, self, ("start", sid))
        else:
            self._activate(silence, now, ctx)
        ctx.schedule(ends, self, ("end", sid))

    def expire(self, sid: str, now: float, ctx: Context) -> None:
        """End a silence now; KeyError when there is none."""
        silence = self.by_id[sid]
        if silence.state(now) == "expired":
            return
        silence.ends_at = max(now, silence.starts_at)
        silence.updated_at = now
        self._release(silence, now, ctx, f"silence expired by an operator ({sid})")
        ctx.schedule(now + KEEP_EXPIRED, self, ("forget", sid))

    # -- the engine's side ------------------------------------------------------------

    def on_transition(self, transition: str, alert: Alert, now: float, ctx: Context) -> None:
        ident = alert.identifier
        for sid, silence in self.by_id.items():
            if transition == DELETED:
                silence.held.discard(ident)
                continue
            if silence.state(now) != "active":
                continue
            matches = alert.status != CLEARED and self._matches(sid, alert)
            if matches and ident not in silence.held:
                self._hold(silence, alert, now, ctx)
            elif not matches and ident in silence.held:
                silence.held.discard(ident)
                ctx.unsuppress(alert, now, PREFIX + sid, "it no longer matches the silence")

    def on_timer(self, key: Hashable, now: float, ctx: Context) -> None:
        assert isinstance(key, tuple)
        what, sid = key
        silence = self.by_id.get(sid)
        if silence is None:
            return
        if what == "start" and silence.starts_at == now and silence.state(now) == "active":
            self._activate(silence, now, ctx)
        elif what == "end" and silence.ends_at == now:
            self._release(silence, now, ctx, f"silence {sid} ended")
            ctx.schedule(now + KEEP_EXPIRED, self, ("forget", sid))
        elif what == "forget" and silence.ends_at + KEEP_EXPIRED <= now:
            del self.by_id[sid]
            self._compiled.pop(sid, None)

    def _matches(self, sid: str, alert: Alert) -> bool:
        return all(m.test(alert) for m in self._compiled[sid])

    def _activate(self, silence: Silence, now: float, ctx: Context) -> None:
        """A silence starts: one pass over the table for the rows it mutes."""
        for alert in list(ctx.table.rows.values()):
            if alert.status != CLEARED and self._matches(silence.id, alert):
                self._hold(silence, alert, now, ctx)

    def _hold(self, silence: Silence, alert: Alert, now: float, ctx: Context) -> None:
        silence.held.add(alert.identifier)
        who = f" by {silence.created_by}" if silence.created_by else ""
        why = f"silenced{who}: {silence.comment}" if silence.comment else f"silenced{who}"
        ctx.suppress(alert, now, PREFIX + silence.id, why)

    def _release(self, silence: Silence, now: float, ctx: Context, why: str) -> None:
        for ident in sorted(silence.held):
            alert = ctx.table.get(ident)
            if alert is not None:
                ctx.unsuppress(alert, now, PREFIX + silence.id, why)
        silence.held.clear()
