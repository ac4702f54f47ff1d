"""Compiled normalize rules and their application to raw events (DESIGN.md §4).

The first rule whose `match`/`when` hold wins, unless it says `continue: true`.
Rules are found through a dispatch index, so 50 rules that do not match cost a
few dict probes, not 50 matcher evaluations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from correlator.errors import InvalidEvent
from correlator.model import Alert
from correlator.normalize.build import build_alert, string_map
from correlator.ruleset.expr import when_raw
from correlator.ruleset.index import RuleIndex
from correlator.ruleset.matchers import Predicate, all_of, compile_matchers
from correlator.ruleset.schema import NormalizeRule
from correlator.ruleset.templates import Template, compile_map


@dataclass(frozen=True, slots=True)
class ProbeRule:
    """One normalize rule, compiled."""

    name: str
    test: Predicate
    fields: tuple[tuple[str, Template], ...]
    labels: tuple[tuple[str, Template], ...]
    annotations: tuple[tuple[str, Template], ...]
    identifier: tuple[str, ...] | None
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
        fields=tuple(compile_map(spec.fields, prefix="raw").items()),
        labels=tuple(compile_map(spec.labels, prefix="raw").items()),
        annotations=tuple(compile_map(spec.annotations, prefix="raw").items()),
        identifier=tuple(spec.identifier) if spec.identifier else None,
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

    def normalize(self, raw: dict[str, Any], now: float) -> Alert | str:
        """The occurrence, or the name of the rule that discarded the event."""
        if not isinstance(raw, dict):
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
        labels = string_map(raw.get("labels"), "labels")
        annotations = string_map(raw.get("annotations"), "annotations")
        if not matched:
            return build_alert(raw, labels, annotations, now)
        fields = dict(raw)
        identifier: tuple[str, ...] | None = None
        expire_after: float | None = None
        for rule in matched:
            for key, template in rule.fields:
                fields[key] = template.render(raw)
            for key, template in rule.labels:
                labels[key] = template.render(raw)
            for key, template in rule.annotations:
                annotations[key] = template.render(raw)
            identifier = rule.identifier or identifier
            expire_after = rule.expire_after if rule.expire_after is not None else expire_after
        return build_alert(
            fields,
            labels,
            annotations,
            now,
            identifier_fields=identifier,
            expire_after=expire_after,
        )
