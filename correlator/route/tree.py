"""Alertmanager's routing tree, pasted into a rule file, with Alertmanager's semantics.

A route matches an alert (its label view, DESIGN.md §4) when all its matchers
do; the root matches everything. Children are tried in order: every matching
child contributes its own matches, and the first matching child without
`continue` ends the search. A route none of whose children matched is itself
the match. Options are inherited from the parent unless set: the receiver,
`group_by` (`['...']`: group by every label), `group_wait` (30s),
`group_interval` (5m), `repeat_interval` (4h); time intervals are the route's
own (Alertmanager does not inherit them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Final

from pydantic import Field, field_validator

from correlator.correlate.inhibit import LabelMap, MatcherLines, RegexMap
from correlator.model import Alert
from correlator.ruleset.labelview import label_matcher, parse_label_matchers
from correlator.ruleset.matchers import Matcher
from correlator.ruleset.schema import Duration, Strict

GROUP_BY_ALL: Final = "..."


class RouteSpec(Strict):
    """One node of `route:` as Alertmanager's configuration writes it."""

    receiver: str | None = None
    group_by: list[str] | None = None
    continue_: bool = Field(False, alias="continue")
    matchers: MatcherLines = []
    match: LabelMap = {}
    match_re: RegexMap = {}
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: list[str] = []
    active_time_intervals: list[str] = []
    routes: list[RouteSpec] = []

    @field_validator("match", "match_re")
    @classmethod
    def _check_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            label_matcher(name, "=", "")
        return value


@dataclass(frozen=True, slots=True)
class RouteOpts:
    """What a matched route tells the dispatcher: where to, grouped how, how often."""

    receiver: str = ""
    group_by: frozenset[str] = frozenset()
    group_by_all: bool = False
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()


@dataclass(eq=False)
class Route:
    """A compiled route: its options, its matchers and its children."""

    opts: RouteOpts
    matchers: list[Matcher]
    shown: list[str]  # the matchers as Alertmanager prints them (keys)
    continue_: bool = False
    parent: Route | None = None
    index: int = 0  # among its siblings
    routes: list[Route] = field(default_factory=list)

    def match(self, alert: Alert) -> list[Route]:
        """The routes the alert ends at, in order (Alertmanager's `Match`)."""
        for matcher in self.matchers:
            if not matcher.test(alert):
                return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(alert)
            found.extend(matched)
            if matched and not child.continue_:
                break
        return found or [self]

    def walk(self) -> Iterator[Route]:
        """This route and every route below it, depth first."""
        yield self
        for child in self.routes:
            yield from child.walk()

    def key(self) -> str:
        """Alertmanager's route key: the matchers from the root down (group keys use it)."""
        own = "{" + ",".join(self.shown) + "}"
        return own if self.parent is None else f"{self.parent.key()}/{own}"

    def id(self) -> str:
        """The key plus the route's place among its siblings: unique in the tree."""
        if self.parent is None:
            return self.key()
        return f"{self.parent.id()}/{{{','.join(self.shown)}}}/{self.index}"


def build(spec: RouteSpec, parent: Route | None = None, index: int = 0) -> Route:
    """Compile a route and its children (raises ValueError for a bad matcher line)."""
    base = parent.opts if parent is not None else RouteOpts()
    opts = replace(
        base,
        receiver=spec.receiver or base.receiver,
        group_wait=_or(spec.group_wait, base.group_wait),
        group_interval=_or(spec.group_interval, base.group_interval),
        repeat_interval=_or(spec.repeat_interval, base.repeat_interval),
        mute_time_intervals=tuple(spec.mute_time_intervals),
        active_time_intervals=tuple(spec.active_time_intervals),
    )
    if spec.group_by is not None:
        everything = GROUP_BY_ALL in spec.group_by
        labels = frozenset() if everything else frozenset(spec.group_by)
        opts = replace(opts, group_by=labels, group_by_all=everything)
    matchers = [m for line in spec.matchers for m in parse_label_matchers(line)]
    shown = [_show(m.name, m.op, m.value) for m in matchers]
    for name, value in spec.match.items():
        matchers.append(label_matcher(name, "=", value))
        shown.append(_show(name, "=", value))
    for name, value in spec.match_re.items():
        matchers.append(label_matcher(name, "=~", value))
        shown.append(_show(name, "=~", f"^(?:{value})$"))  # printed anchored, as Alertmanager does
    shown.sort()
    route = Route(opts, matchers, shown, spec.continue_, parent, index)
    route.routes = [build(child, route, i) for i, child in enumerate(spec.routes)]
    return route


def _or(value: float | None, inherited: float) -> float:
    return inherited if value is None else value


def _show(name: str, op: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'{name}{op}"{escaped}"'


def problems(
    spec: RouteSpec, receivers: set[str], intervals: set[str]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """What Alertmanager refuses in a tree: (path below `route`, message) each."""
    if not spec.receiver:
        yield ("receiver",), "the root route must have a receiver"
    if spec.matchers or spec.match or spec.match_re:
        yield ("matchers",), "the root route must not have any matchers"
    if spec.continue_:
        yield ("continue",), "the root route cannot have continue set"
    if spec.mute_time_intervals or spec.active_time_intervals:
        yield ("mute_time_intervals",), "the root route cannot have time intervals"
    yield from _references(spec, (), receivers, intervals)


def _references(
    spec: RouteSpec, at: tuple[str | int, ...], receivers: set[str], intervals: set[str]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    if spec.receiver and spec.receiver not in receivers:
        yield (*at, "receiver"), f"undefined receiver {spec.receiver!r}"
    for key in ("mute_time_intervals", "active_time_intervals"):
        names: list[str] = getattr(spec, key)
        for i, name in enumerate(names):
            if name not in intervals:
                yield (*at, key, i), f"undefined time interval {name!r}"
    if spec.group_by and GROUP_BY_ALL in spec.group_by and len(spec.group_by) > 1:
        yield (*at, "group_by"), "cannot have wildcard group_by (`...`) and other labels"
    for i, child in enumerate(spec.routes):
        yield from _references(child, (*at, "routes", i), receivers, intervals)
