"""Pydantic models shared by every rule section: names, matchers, CEL, templates, durations.

Validators compile each matcher, CEL expression and template while the file is
validated, so a bad one is reported with the line and column of its own node.
The engine never sees these models: `compile` turns them into plain closures.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
)

from correlator.model import TYPES
from correlator.ruleset.expr import CelExpression
from correlator.ruleset.matchers import parse_matcher
from correlator.ruleset.templates import Template
from correlator.timeparse import DURATION_PATTERN, parse_duration


def _check_matcher(text: str) -> str:
    parse_matcher(text)
    return text


def _check_cel(text: str) -> str:
    CelExpression(text)
    return text


def _template_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _check_template(text: str) -> str:
    Template(text)
    return text


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


# What YAML may hold where a value is coerced (`correlator schema` declares it, so editors
# accept what `check` accepts): `json_schema_input_type` on each BeforeValidator.
OneOrMany = str | list[str]
Scalar = str | int | float | bool
DURATION_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "description": "seconds, or 30s, 5m, 2h, 1d, 1h30m, 500ms",
}

Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_SCHEMA)]


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {value!r} (use an IANA name)") from None
    return value


ZoneName = Annotated[str, AfterValidator(_check_zone)]  # an IANA time zone: Europe/Zurich
MatcherText = Annotated[str, AfterValidator(_check_matcher)]
Matchers = Annotated[
    list[MatcherText], BeforeValidator(_one_or_many, json_schema_input_type=OneOrMany)
]
CelText = Annotated[str, AfterValidator(_check_cel)]
TemplateText = Annotated[
    str,
    BeforeValidator(_template_text, json_schema_input_type=Scalar),
    AfterValidator(_check_template),
]
FieldNames = Annotated[
    list[str],
    BeforeValidator(_one_or_many, json_schema_input_type=OneOrMany),
    Field(min_length=1),
]
RuleName = Annotated[str, Field(min_length=1, pattern=r"^[^\s:]+$")]


CanonicalField = Literal[
    "node", "manager", "agent", "alertgroup", "alertkey", "severity", "type", "summary",
    "timestamp",
]  # fmt: skip


class Strict(BaseModel):
    """Base of every rule model: unknown keys are errors, models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Rule(Strict):
    """What every rule has: a unique name, matchers and an optional CEL condition."""

    name: RuleName
    match: Matchers = []
    when: CelText | None = None


class NormalizeRule(Rule):
    """A probe rule: raw event → canonical alert fields (DESIGN.md §4 normalize)."""

    fields: dict[CanonicalField, TemplateText] = {}
    labels: dict[str, TemplateText] = {}
    annotations: dict[str, TemplateText] = {}
    identifier: FieldNames | None = None
    discard: StrictBool = False  # YAML 1.2: `yes`/`on` are strings, not booleans
    continue_: StrictBool = Field(False, alias="continue")
    expire_after: Duration | None = None


def _check_type(value: str) -> str:
    if "{" not in value and value not in TYPES:
        raise ValueError(f"type must be one of {sorted(TYPES)}")
    return value


class AlertSpec(Strict):
    """The `alert:` a correlation rule raises. Every value is a template.

    Defaults: node `correlator`, alertgroup the rule name, alertkey the group
    values joined by `:`, severity the highest among the members (major when
    there are none), summary `<rule name>: <count> events`.
    """

    identifier: TemplateText | None = None
    node: TemplateText | None = None
    alertgroup: TemplateText | None = None
    alertkey: TemplateText | None = None
    severity: TemplateText | None = None
    summary: TemplateText | None = None
    labels: dict[str, TemplateText] = {}
    annotations: dict[str, TemplateText] = {}
    expire_after: Duration | None = None
