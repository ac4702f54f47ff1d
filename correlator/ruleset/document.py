"""The model of one rule file: every top-level section of DESIGN.md §4."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from correlator.correlate.inhibit import InhibitRule
from correlator.correlate.kinds import CorrelateSpec
from correlator.correlate.policy import PolicySpec
from correlator.route.intervals import TimeIntervalSpec
from correlator.route.tree import RouteSpec
from correlator.ruleset.schema import NormalizeRule, Strict
from correlator.ruleset.tables import TableSpec


class TopologyNode(Strict):
    depends_on: list[str] = []


class RuleFile(Strict):
    """One YAML file; the loader merges many of them into one rule set.

    `route` is Alertmanager's routing tree (one file may hold it); `receivers`
    are validated by the daemon that delivers to them.
    """

    normalize: list[NormalizeRule] = []
    correlate: list[CorrelateSpec] = []
    topology: dict[str, TopologyNode] = {}
    policies: list[PolicySpec] = []
    route: RouteSpec | None = None
    receivers: list[dict[str, Any]] = []
    inhibit_rules: list[InhibitRule] = []
    time_intervals: list[TimeIntervalSpec] = []
    mute_time_intervals: list[TimeIntervalSpec] = []  # Alertmanager's older name for them
    tables: dict[str, TableSpec] = Field(default_factory=dict)


def json_schema() -> dict[str, Any]:
    """JSON Schema of a rule file, for editors (`correlator schema`)."""
    schema = RuleFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "correlator rule file"
    return schema
