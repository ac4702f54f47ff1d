"""CEL `when:` expressions, compiled once with the Rust-backed `cel` package.

An expression that fails at run time (a missing map key, a type mismatch) does
not match; the failure is counted so a broken rule shows on a dashboard instead
of crashing the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cel


class CelExpression:
    """A compiled CEL program evaluated against a mapping of names."""

    __slots__ = ("_program", "errors", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors = 0
        try:
            self._program = cel.compile(source)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"bad CEL expression: {_first_line(exc)}") from None

    def __call__(self, context: Mapping[str, Any]) -> bool:
        try:
            result = self._program.execute(dict(context))
        except Exception:  # the cel package raises assorted builtins (KeyError, RuntimeError, ...)
            self.errors += 1
            return False
        if not isinstance(result, bool):
            self.errors += 1
            return False
        return result


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.split("\n", 1)[0].removeprefix("Failed to parse expression ")


def when_predicate(
    source: str | None, context_of: Callable[[Any], Mapping[str, Any]]
) -> Callable[[Any], bool] | None:
    """Compile `when:` into a predicate over an object, or None when absent."""
    if not source:
        return None
    expression = CelExpression(source)
    return lambda obj: expression(context_of(obj))
