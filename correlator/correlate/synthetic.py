"""The alerts correlation rules raise: identifier, fields and template context.

Identifier: `correlator:<rule>` then `:<value>` per group value, unless the
`alert:` sets `identifier`. Severity: the `alert:`'s, else the highest among
the members if that is at least 1 (indeterminate), else major. Templates see the triggering alert's fields,
`group` (each value under its name as written and under its last dotted
segment), `count`, `members` (the matching alerts) and `rule`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from correlator.model import CLEARED, PROBLEM, Alert, parse_severity
from correlator.ruleset import sandbox
from correlator.ruleset.paths import alert_context, last_segment
from correlator.ruleset.schema import AlertSpec
from correlator.ruleset.templates import Template, compile_map

Group = Sequence[tuple[str, Any]]
Render = Callable[[Mapping[str, Any]], str]

INDETERMINATE: Final = 1
MAJOR: Final = 4
_OWN_NAMES: Final = frozenset(("group", "count", "members", "rule"))  # not the trigger's
_GROUP_NAMES: Final = frozenset(("group", "rule"))  # the same for every alert of one group
_FIXED_LIMIT: Final = 1024  # groups whose fixed renders are kept (cleared when full)
SINGLE_FIELDS: Final = ("identifier", "node", "alertgroup", "alertkey", "severity", "summary")


def default_severity_of(members: Sequence[Alert], trigger: Alert | None) -> int:
    """The severity of a synthetic alert whose `alert:` sets none.

    The highest among the members (the trigger's when there are none), but
    never 0: an open alert is not "clear", and the events that raise one (job
    starts, restarts, heartbeats) are often severity 0 or unset. With no
    member of severity 1 or more the default is major, as for `absence`.
    """
    severities = [m.severity for m in members] or ([trigger.severity] if trigger else [])
    top = max(severities, default=0)
    return top if top >= INDETERMINATE else MAJOR


def group_values(group: Group) -> dict[str, Any]:
    """`group` as templates see it: each value under its name and its last segment."""
    values: dict[str, Any] = {}
    for name, value in group:
        values[name] = value
        values.setdefault(last_segment(name), value)
    return values


def group_key(group: Group) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for _, v in group)


def _reads_group_only(template: Template) -> bool:
    """Whether the template reads nothing but `group` and `rule` (a constant reads nothing)."""
    return template.names is not None and template.names <= _GROUP_NAMES


class _Fixed:
    """What one group's alert is the same every time: `group` and the values read from it.

    A storm's alert is raised again per member event; only the texts that read
    `count`, `members` or the trigger can differ from one raise to the next.
    """

    __slots__ = (
        "annotations",
        "count_only",
        "fields",
        "group",
        "keys",
        "labels",
        "renders",
        "scratch",
        "texts",
    )

    def __init__(
        self,
        group: dict[str, Any],
        keys: tuple[str, ...],
        fields: dict[str, Any],
        labels: dict[str, str],
        annotations: dict[str, str],
        renders: dict[str, Render],
        count_only: bool,
    ) -> None:
        self.group = group  # `group` as templates see it (read-only to them)
        self.keys = keys  # the group's values as text (default identifier and alertkey)
        self.fields = fields  # final single-field values that depend only on the group
        self.labels = labels  # rendered labels that read only `group`/`rule`
        self.annotations = annotations
        self.renders = renders  # the single-field templates with the group rendered in
        self.count_only = count_only  # and all they read then is `count`
        # the text fields that may differ from one raise to the next
        self.texts = tuple(
            n for n in ("node", "alertgroup", "summary", "alertkey") if n not in fields
        )
        self.scratch: Alert | None = None  # the occurrence `again` fills in and hands out


class SyntheticAlert:
    """A compiled `alert:` section."""

    def __init__(self, rule: str, spec: AlertSpec | None) -> None:
        spec = spec or AlertSpec()
        self.rule = rule
        self._single = {
            name: Template(value)
            for name in SINGLE_FIELDS
            if (value := getattr(spec, name)) is not None
        }
        self._renders = {name: template.render for name, template in self._single.items()}
        self._labels = compile_map(spec.labels)
        self._annotations = compile_map(spec.annotations)
        self.expire_after = spec.expire_after
        # templates reading only `group` and `rule` render once per group (`_fixed_of`)
        self._fixed_single = {n: t for n, t in self._single.items() if _reads_group_only(t)}
        self._fixed_labels = {k: t for k, t in self._labels.items() if _reads_group_only(t)}
        self._fixed_notes = {k: t for k, t in self._annotations.items() if _reads_group_only(t)}
        self._varying = any(
            not _reads_group_only(t)
            for t in (*self._single.values(), *self._labels.values(), *self._annotations.values())
        )
        self._fixed: dict[tuple[tuple[str, Any], ...], _Fixed] = {}
        # every label and annotation reads only `group`/`rule`: `again` may reuse a record
        self._fixed_maps = len(self._fixed_labels) == len(self._labels) and len(
            self._fixed_notes
        ) == len(self._annotations)
        # what the templates read: a storm's alert is raised again per member, and the
        # trigger's fields (a dict of every field) and the members are seldom among it
        templates = [*self._single.values(), *self._labels.values(), *self._annotations.values()]
        reads: frozenset[str] | None = frozenset()
        for template in templates:
            reads = None if reads is None or template.names is None else reads | template.names
        self._trigger_read = reads is None or not reads <= _OWN_NAMES
        self._members_read = reads is None or "members" in reads
        # the alert reads of its trigger and members no more than `severity` (the default's)
        self.reads_severity_only = not (self._trigger_read or self._members_read)

    def context(
        self,
        group: Group,
        trigger: Alert | None,
        members: Sequence[Alert],
        count: int,
        *,
        whole: bool = True,
    ) -> dict[str, Any]:
        """What templates see; not `whole`: only what this alert's own templates read."""
        return self._context(group_values(group), trigger, members, count, whole=whole)

    def _context(
        self,
        values: dict[str, Any],
        trigger: Alert | None,
        members: Sequence[Alert],
        count: int,
        *,
        whole: bool,
    ) -> dict[str, Any]:
        trigger_read = whole or self._trigger_read
        ctx: dict[str, Any] = alert_context(trigger) if trigger is not None and trigger_read else {}
        ctx.update(
            group=values,
            count=count,
            members=list(members) if whole or self._members_read else [],
            rule=self.rule,
        )
        return ctx

    def identifier(self, group: Group, ctx: dict[str, Any]) -> str:
        return self._render("identifier", ctx) or ":".join(
            ("correlator", self.rule, *group_key(group))
        )

    def identifier_for(
        self, group: Group, trigger: Alert | None, members: Sequence[Alert], count: int
    ) -> str:
        """The identifier an alert of `group` raised for `trigger` gets.

        A default identifier, or one that reads only the group, needs no
        context of the trigger's fields (a pair's unpaired second asks this).
        """
        fixed = self._fixed_of(group)
        if fixed is not None and "identifier" in fixed.fields:
            return str(fixed.fields["identifier"])
        return self.identifier(group, self.context(group, trigger, members, count, whole=False))

    def default_identifier(self, keys: tuple[str, ...]) -> str | None:
        """The identifier of the group whose values, as text, are `keys`, if the `alert:`
        sets none (None: ask `identifier_for`). A pair asks it of every unpaired second's
        key: more keys than `_fixed_of` keeps, whose renders it would redo each time."""
        if "identifier" in self._single:
            return None
        return ":".join(("correlator", self.rule, *keys))

    def _fixed_of(self, group: Group) -> _Fixed | None:
        """The group's values that read only `group`/`rule`, made once (None: not cacheable).

        Keyed by the group's values, every input those templates read: a
        render is reused only for the same values. Renders that hit a
        template limit are not kept (each render counts its hit).
        """
        key = tuple(group)
        try:
            fixed = self._fixed.get(key)
        except TypeError:  # a value that cannot be a key: render every time
            return None
        if fixed is not None:
            return fixed
        values, keys = group_values(group), group_key(group)
        ctx = {"group": values, "rule": self.rule}
        hits = sandbox.LIMITS.hits
        fields: dict[str, Any] = {}
        for name in ("identifier", "node", "alertgroup", "alertkey"):
            template = self._single.get(name)
            if template is None or name in self._fixed_single:
                fields[name] = self._text(name, ctx, keys, 0)
        if "severity" in self._fixed_single and self._render("severity", ctx).strip():
            fields["severity"] = self._severity(ctx, (), None)  # empty: the members decide
        if "summary" in self._fixed_single and (summary := self._render("summary", ctx)):
            fields["summary"] = summary  # an empty one falls back on a text with the count
        renders: dict[str, Render] = {}
        reads: set[str] | None = set()
        for name, template in self._single.items():
            bound = template.bound(ctx)
            if bound is None:
                renders[name], reads = template.render, None
            else:
                renders[name], names = bound
                reads = None if reads is None else reads | names
        fixed = _Fixed(
            values,
            keys,
            fields,
            {k: t.render(ctx) for k, t in self._fixed_labels.items()},
            {k: t.render(ctx) for k, t in self._fixed_notes.items()},
            renders,
            reads is not None and reads <= {"count"},
        )
        if sandbox.LIMITS.hits != hits:
            return fixed  # used once, as a render would be, and never kept
        if len(self._fixed) >= _FIXED_LIMIT:
            self._fixed.clear()
        self._fixed[key] = fixed
        return fixed

    def _text(
        self,
        name: str,
        ctx: dict[str, Any],
        keys: tuple[str, ...],
        count: int,
        renders: Mapping[str, Render] | None = None,
    ) -> str:
        """A single text field: its `alert:` template's text, else the kind's default."""
        return self._render(name, ctx, renders) or self._default(name, keys, count)

    def _default(self, name: str, keys: tuple[str, ...], count: int) -> str:
        """The kind's text for a single field its `alert:` leaves unset or renders empty."""
        if name == "identifier":
            return ":".join(("correlator", self.rule, *keys))
        if name == "node":
            return "correlator"
        if name == "alertgroup":
            return self.rule
        if name == "alertkey":
            return ":".join(keys)
        return f"{self.rule}: {count} events"  # summary

    def _severity(
        self,
        ctx: dict[str, Any],
        members: Sequence[Alert],
        trigger: Alert | None,
        renders: Mapping[str, Render] | None = None,
    ) -> int:
        if text := self._render("severity", ctx, renders).strip():
            try:
                return parse_severity(text)
            except ValueError:
                return MAJOR
        return default_severity_of(members, trigger)

    def _render(
        self, name: str, ctx: dict[str, Any], renders: Mapping[str, Render] | None = None
    ) -> str:
        """The `alert:` value, or "" when it sets none or renders empty (the default applies).

        `renders`: a group's (`_Fixed.renders`), else the templates as compiled.
        """
        render = (self._renders if renders is None else renders).get(name)
        return "" if render is None else render(ctx)

    def build(
        self,
        group: Group,
        now: float,
        *,
        trigger: Alert | None = None,
        members: Sequence[Alert] = (),
        count: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> Alert:
        """A new occurrence of the synthetic alert (not yet in the table).

        Values that depend only on the group come from `_fixed_of`; the others
        are rendered from a context holding what they read. `extra` may hold
        any name, so with it everything is rendered.
        """
        fixed = self._fixed_of(group) if extra is None else None
        if fixed is None:
            ctx = self.context(group, trigger, members, count, whole=False)
            if extra:
                ctx.update(extra)
            keys, known = group_key(group), {}
            labels: dict[str, str] = {}
            notes: dict[str, str] = {}
        else:
            ctx = {}
            if self._varying:
                ctx = self._context(fixed.group, trigger, members, count, whole=False)
            keys, known, labels, notes = fixed.keys, fixed.fields, fixed.labels, fixed.annotations
        severity = known.get("severity")
        if severity is None:
            severity = self._severity(ctx, members, trigger)
        alert = Alert(  # positional, as in build_alert: raised again on every count change
            known.get("identifier") or self._text("identifier", ctx, keys, count),
            known.get("node") or self._text("node", ctx, keys, count),
            known.get("alertgroup") or self._text("alertgroup", ctx, keys, count),
            severity,
            PROBLEM,
            known.get("summary") or self._text("summary", ctx, keys, count),
            known.get("alertkey") or self._text("alertkey", ctx, keys, count),
            "correlator",  # manager
            self.rule,  # agent
            {k: labels[k] if k in labels else t.render(ctx) for k, t in self._labels.items()},
            {k: notes[k] if k in notes else t.render(ctx) for k, t in self._annotations.items()},
            0.0,  # first_occurrence: the table sets it
            now,  # last_occurrence
        )
        alert.expire_after = self.expire_after
        return alert

    def again(
        self,
        group: Group,
        now: float,
        rows: Mapping[str, Alert],
        *,
        trigger: Alert | None = None,
        members: Sequence[Alert] = (),
        count: int = 0,
    ) -> Alert | None:
        """`build`'s occurrence for raising again the group's alert that is open in `rows`,
        made on a record the group keeps (None: `build` one instead).

        The table folds an occurrence into an open row without keeping it, so a
        storm's alert, raised again per member event, needs no new record: only
        the texts that read `count`, `members` or the trigger are rendered anew.
        """
        fixed = self._fixed_of(group) if self._fixed_maps else None
        if fixed is None:
            return None
        known = fixed.fields
        identifier = known.get("identifier")
        row = None if identifier is None else rows.get(identifier)
        if row is None or row.status == CLEARED:
            return None  # a new row or a reopen: the table may keep the occurrence
        occ = fixed.scratch
        if occ is None:  # the group's first raise again: its record, as `build` makes it
            occ = fixed.scratch = self.build(
                group, now, trigger=trigger, members=members, count=count
            )
            return occ
        # the record holds the group's fixed values: only the others are rendered anew, as
        # `build` renders them but with the group's values in; what is left reads the
        # count alone (the usual: a threshold's summary), else a context of what it reads
        ctx: dict[str, Any] = {"count": count}
        if self._varying and not fixed.count_only:
            ctx = self._context(fixed.group, trigger, members, count, whole=False)
        renders = fixed.renders
        if "severity" not in known:
            occ.severity = self._severity(ctx, members, trigger, renders)
        for name in fixed.texts:  # `_text`, inline: a storm renders one per member
            render = renders.get(name)
            text = "" if render is None else render(ctx)
            setattr(occ, name, text or self._default(name, fixed.keys, count))
        occ.last_occurrence = now
        return occ
