"""The fields a rule may set on a row: `severity`, `summary`, `labels.<k>`, `annotations.<k>`.

Escalation and policies write rows through these, so both accept the same
names and a rendered severity is parsed the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final

from correlator.model import Alert, parse_severity
from correlator.ruleset.paths import alert_context
from correlator.ruleset.templates import Template

SETTABLE: Final = ("severity", "summary")
MAPS: Final = ("labels.", "annotations.")

Value = int | str | None


def check_names(names: list[str] | dict[str, str]) -> None:
    """ValueError naming the first field that cannot be set."""
    for name in names:
        head, _, key = name.partition(".")
        if name not in SETTABLE and not (key and head in ("labels", "annotations")):
            raise ValueError(
                f"cannot set {name!r}: use severity, summary, labels.<k> or annotations.<k>"
            )


def get(alert: Alert, name: str) -> Value:
    if name == "severity":
        return alert.severity
    if name == "summary":
        return alert.summary
    head, _, key = name.partition(".")
    return (alert.labels if head == "labels" else alert.annotations).get(key)


def put(alert: Alert, name: str, value: Value) -> None:
    if name == "severity":
        alert.severity = int(value or 0)
    elif name == "summary":
        alert.summary = str(value or "")
    else:
        head, _, key = name.partition(".")
        target = alert.labels if head == "labels" else alert.annotations
        if value is None:
            target.pop(key, None)
        else:
            target[key] = str(value)


def rendered(
    alert: Alert,
    templates: Mapping[str, Template],
    now: float,
    rule: str,
    bad: Callable[[], None],
) -> Iterator[tuple[str, Value]]:
    """Each field's value rendered over the alert as it stands before any is written.

    An empty severity is left out (not set); one that names no severity is
    left out too, with a journal note, and `bad()` is called to count it.
    """
    context = alert_context(alert)
    values: list[tuple[str, Value]] = []
    for name, template in templates.items():
        text = template.render(context)
        if name != "severity":
            values.append((name, text))
            continue
        if not text.strip():
            continue  # empty means not set: severity is left alone
        try:
            values.append((name, parse_severity(text)))
        except ValueError:
            bad()
            alert.note(now, rule, f"not a severity: {text!r}; severity left alone")
    return iter(values)
