"""The registry of correlation kinds: their rule models and operator builders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from correlator.correlate import (
    absence,
    change,
    clear,
    escalate,
    flapping,
    incident,
    inhibit,
    maintenance,
    pair,
    threshold,
    topology,
)
from correlator.correlate.base import BuildEnv, Operator

CorrelateSpec = Annotated[
    clear.ClearRule
    | pair.PairRule
    | change.ChangeRule
    | flapping.FlappingRule
    | inhibit.InhibitKindRule
    | topology.TopologyRule
    | threshold.ThresholdRule
    | absence.AbsenceRule
    | incident.IncidentRule
    | maintenance.MaintenanceRule
    | escalate.EscalateRule,
    Field(discriminator="kind"),
]

BUILDERS: dict[str, Callable[[Any, BuildEnv], Operator]] = {
    "clear": clear.build,
    "pair": pair.build,
    "change": change.build,
    "flapping": flapping.build,
    "inhibit": inhibit.build,
    "topology": topology.build,
    "threshold": threshold.build,
    "absence": absence.build,
    "incident": incident.build,
    "maintenance": maintenance.build,
    "escalate": escalate.build,
}
