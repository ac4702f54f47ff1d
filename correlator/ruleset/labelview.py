"""The Alertmanager label view of an alert, and matchers that read it.

The Alertmanager-syntax sections (`inhibit_rules` now; `route` and silences)
must behave as the block did in `alertmanager.yml`. Alertmanager sees an alert
as one flat label set; a correlator alert is a row of fields plus labels. The
view joins them: the alert's labels, plus its fields as labels (`alertname` =
alertgroup, `severity` by its name, e.g. `critical`, other fields as text),
where a label the alert carries wins over a field of the same name. Matchers
compare strings case-sensitively, regexes are RE2 anchored at both ends, and
values follow Alertmanager's quoting.

Two extensions, in forms Alertmanager refuses (so no pasted line changes
meaning): `labels.x` / `annotations.x` names, and numeric `>= > <= <` on
`severity` and `tally`, which compare the row's numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Final

from correlator.model import SEVERITY_NAMES, Alert
from correlator.ruleset.matchers import (
    Matcher,
    Predicate,
    as_text,
    parse_matcher,
    split_list,
    unquote,
)
from correlator.ruleset.paths import ALERT_FIELDS
from correlator.ruleset.regex import full_match

LabelGetter = Callable[[Alert], str]

# Alertmanager's classic matcher syntax, plus the two extensions (dotted names, numeric ops)
_SYNTAX: Final = re.compile(
    r"^\s*([a-zA-Z_:][a-zA-Z0-9_:.]*)\s*(=~|!=|!~|>=|<=|=|>|<)\s*(.*?)\s*$", re.DOTALL
)
_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*|(?:labels|annotations)\.[^.]+")
_NUMERIC_OPS: Final = frozenset((">=", ">", "<=", "<"))


def label_getter(name: str) -> LabelGetter:
    """The value of `name` in the alert's label view: always text, "" when absent."""
    head, _, rest = name.partition(".")
    if head == "labels" and rest:
        return lambda alert: alert.labels.get(rest, "")
    if head == "annotations" and rest:
        return lambda alert: alert.annotations.get(rest, "")
    if name == "alertname":
        return lambda alert: alert.labels.get("alertname") or alert.alertgroup
    if name == "severity":
        return lambda alert: alert.labels.get("severity") or SEVERITY_NAMES[alert.severity]
    if name in ALERT_FIELDS:
        field = attrgetter(name)
        return lambda alert: alert.labels.get(name) or as_text(field(alert))
    return lambda alert: alert.labels.get(name, "")


def label_value(alert: Alert, name: str) -> str:
    """One value of the label view (for callers off the hot path)."""
    return label_getter(name)(alert)


def label_key(names: Sequence[str]) -> Callable[[Alert], tuple[str, ...]]:
    """The label-view values of `names`, as one tuple (inhibit's `equal`, routing's `group_by`)."""
    getters = tuple(label_getter(name) for name in names)
    if len(getters) == 1:
        (get,) = getters
        return lambda alert: (get(alert),)
    return lambda alert: tuple([get(alert) for get in getters])


def label_matcher(name: str, op: str, value: str) -> Matcher:
    """A matcher on the label view from its parts (legacy `*_match` / `*_match_re` maps)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid label name {name!r}")
    get = label_getter(name)
    return Matcher(name, op, value, _test(op, value, get), get)


def _test(op: str, value: str, get: LabelGetter) -> Predicate:
    if op == "=":
        return lambda alert: get(alert) == value
    if op == "!=":
        return lambda alert: get(alert) != value
    fullmatch = full_match(value)
    if op == "=~":
        return lambda alert: fullmatch(get(alert))
    return lambda alert: not fullmatch(get(alert))


def parse_label_matcher(text: str) -> Matcher:
    """Parse one matcher as Alertmanager does; raise ValueError with its reason."""
    match = _SYNTAX.match(text)
    if match is None:
        raise ValueError(f'bad matcher format: {text!r} (expected name="value", !=, =~ or !~)')
    name, op, value_text = match.groups()
    if op in _NUMERIC_OPS:
        if name not in ("severity", "tally"):
            raise ValueError(f"numeric comparison {op} is only allowed on severity and tally")
        return parse_matcher(text)  # correlator's flavour: the row's number
    if not value_text:
        raise ValueError(
            f"matcher value is not present: {text.strip()}"
        )  # `a=""` is the empty value
    return label_matcher(name, op, unquote(value_text))


def parse_label_matchers(line: str) -> list[Matcher]:
    """One `*_matchers` entry: a matcher, or a comma-separated list, optionally in braces."""
    pieces = split_list(line)
    if not pieces:
        raise ValueError("empty matcher")
    return [parse_label_matcher(piece) for piece in pieces]
