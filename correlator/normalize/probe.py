"""Compiled normalize rules and their application to raw events (DESIGN.md §4).

The first rule whose `match`/`when` hold wins, unless it says `continue: true`.
Rules are found through a dispatch index, so 50 rules that do not match cost a
few dict probes, not 50 matcher evaluations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from correlator.errors import InvalidEvent
from correlator.model import Alert
from correlator.normalize.build import build_alert, identifier_function, string_map
from correlator.ruleset.expr import when_raw
from correlator.ruleset.index import RuleIndex
from correlator.ruleset.matchers import Matcher, Predicate, all_of, compile_matchers
from correlator.ruleset.schema import NormalizeRule
from correlator.ruleset.templates import TemplateMap


@dataclass(frozen=True, slots=True)
class ProbeRule:
    """One normalize rule, compiled."""

    name: str
    test: Predicate
    fields: TemplateMap
    labels: TemplateMap | None  # None when the rule sets none: no call per event
    annotations: TemplateMap | None
    identify: Callable[[Alert], str] | None  # the rule's `identifier:` fields, compiled
    discard: bool
    cont: bool
    expire_after: float | None


def compile_rule(spec: NormalizeRule) -> tuple[ProbeRule, list[Any]]:
    matchers = compile_matchers(spec.match, raw=True)
    preds: list[Predicate] = [m.test for m in matchers]
    when = when_raw(spec.when)
    if when is not None:
        preds.append(when)
    rule = ProbeRule(
        name=spec.name,
        test=all_of(preds),
        fields=TemplateMap(spec.fields, prefix="raw"),
        labels=TemplateMap(spec.labels, prefix="raw") if spec.labels else None,
        annotations=TemplateMap(spec.annotations, prefix="raw") if spec.annotations else None,
        identify=identifier_function(tuple(spec.identifier)) if spec.identifier else None,
        discard=spec.discard,
        cont=spec.continue_,
        expire_after=spec.expire_after,
    )
    return rule, matchers


class Normalizer:
    """Raw event → Alert occurrence, or None when a rule discards it."""

    def __init__(self, specs: Sequence[NormalizeRule]) -> None:
        compiled = [compile_rule(spec) for spec in specs]
        self.rules = [rule for rule, _ in compiled]
        self._index: RuleIndex[ProbeRule] = RuleIndex(compiled)
        self.hits: dict[str, int] = dict.fromkeys((r.name for r in self.rules), 0)
        self.gates = _gates([matchers for _, matchers in compiled])

    def normalize(self, raw: dict[str, Any], now: float) -> Alert | str:
        """The occurrence, or the name of the rule that discarded the event."""
        if type(raw) is not dict and not isinstance(raw, dict):
            raise InvalidEvent(f"an event must be a JSON object, not {type(raw).__name__}")
        matched: list[ProbeRule] = []
        for rule in self._index.candidates(raw):
            if not rule.test(raw):
                continue
            self.hits[rule.name] += 1
            if rule.discard:
                return rule.name
            matched.append(rule)
            if not rule.cont:
                break
        labels = raw.get("labels")
        labels = {} if labels is None else string_map(labels, "labels")
        annotations = raw.get("annotations")
        annotations = {} if annotations is None else string_map(annotations, "annotations")
        if not matched:
            return build_alert(raw, labels, annotations, now)
        fields = dict(raw)
        identify: Callable[[Alert], str] | None = None
        expire_after: float | None = None
        for rule in matched:
            rule.fields.render_into(fields, raw)
            if rule.labels is not None:
                rule.labels.render_into(labels, raw)
            if rule.annotations is not None:
                rule.annotations.render_into(annotations, raw)
            identify = rule.identify or identify
            expire_after = rule.expire_after if rule.expire_after is not None else expire_after
        return build_alert(fields, labels, annotations, now, identify, expire_after)


def _gates(rules: Sequence[Sequence[Matcher]]) -> frozenset[str] | None:
    """Raw keys without which no rule applies: an event that has none of them passes through.

    Each rule needs one matcher that fails on an event lacking its key (a
    matcher reads nothing else); None when some rule has none (`x!="y"`, or
    only a `when:`), and then every event is tried against the rules.
    """
    keys: set[str] = set()
    for matchers in rules:
        gate = next((m for m in matchers if not m.test({})), None)
        if gate is None:
            return None
        parts = gate.name.split(".")
        keys.add(parts[1] if parts[0] == "raw" and len(parts) > 1 else parts[0])
    return frozenset(keys)
