"""CEL `when:` expressions, compiled once with the Rust-backed `cel` package.

Handing a value to CEL costs microseconds per key, so a predicate passes only
the top-level variables the expression references (`raw`, `severity`,
`labels`, ...), never a whole alert. An expression that fails at run time (a
missing map key, a type mismatch) does not match; failures are counted so a
broken rule shows on a dashboard instead of crashing the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cel

from correlator.ruleset.paths import Getter, alert_getter


class CelExpression:
    """A compiled CEL program evaluated against a mapping of names."""

    __slots__ = ("_program", "errors", "source", "variables")

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors = 0
        try:
            self._program = cel.compile(source)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"bad CEL expression: {_first_line(exc)}") from None
        self.variables: tuple[str, ...] = tuple(self._program.variables())

    def __call__(self, context: dict[str, Any]) -> bool:
        try:
            result = self._program.execute(context)
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


def _predicate(
    expression: CelExpression, getters: tuple[tuple[str, Getter], ...]
) -> Callable[[Any], bool]:
    def test(obj: Any) -> bool:
        context = {}
        for name, get in getters:
            value = get(obj)
            if value is not None:
                context[name] = value
        return expression(context)

    return test


def when_raw(source: str | None) -> Callable[[Any], bool] | None:
    """`when:` over a raw event: `raw` is the event, a bare name one of its keys."""
    if not source:
        return None
    expression = CelExpression(source)
    getters = tuple(
        (name, (lambda raw: raw) if name == "raw" else _key(name)) for name in expression.variables
    )
    return _predicate(expression, getters)


def _key(name: str) -> Getter:
    return lambda raw: raw.get(name)


def when_alert(source: str | None) -> Callable[[Any], bool] | None:
    """`when:` over an alert: names resolve like matchers (fields, alertname, labels)."""
    if not source:
        return None
    expression = CelExpression(source)
    getters = tuple((name, _alert_var(name)) for name in expression.variables)
    return _predicate(expression, getters)


def _alert_var(name: str) -> Getter:
    if name == "labels":
        return lambda alert: alert.labels
    if name == "annotations":
        return lambda alert: alert.annotations
    return alert_getter(name)
