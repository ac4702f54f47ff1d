"""The registry of correlation kinds: their rule models and operator builders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from correlator.correlate import clear
from correlator.correlate.base import BuildEnv, Operator

CorrelateSpec = Annotated[clear.Spec, Field(discriminator="kind")]

BUILDERS: dict[str, Callable[[Any, BuildEnv], Operator]] = {
    "clear": clear.build,
}
