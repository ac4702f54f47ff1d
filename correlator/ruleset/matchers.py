"""Prometheus/Alertmanager matchers: `name="v"`, `!=`, `=~`, `!~`, and `>= > <= <`.

Regexes are RE2, fully anchored, as in Prometheus. Quoted values follow
Alertmanager's quoting, so a line pasted from an `alertmanager.yml` means what
it meant there. A missing value reads as the empty string, so `team=""`
matches alerts without a team. Numeric comparisons are allowed on `severity`
(names accepted) and `tally`. This is correlator's flavour (names resolve to
fields first); the Alertmanager label view is in `labelview.py`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from correlator.model import SEVERITY_NAMES, parse_severity
from correlator.ruleset.paths import Getter, alert_getter, raw_getter
from correlator.ruleset.regex import full_match

Predicate = Callable[[Any], bool]

_SYNTAX: Final = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(=~|!~|!=|>=|<=|==|=|>|<)\s*(.*?)\s*$")
_NUMERIC_OPS: Final = frozenset((">=", ">", "<=", "<"))
_NUMERIC_FIELDS: Final = frozenset(("severity", "tally"))
_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


@dataclass(frozen=True, slots=True)
class Matcher:
    """One parsed and compiled matcher; `test` is the hot-path predicate."""

    name: str
    op: str
    value: str
    test: Predicate
    get: Getter
    values: tuple[str, ...] = ()  # op "in": any of these (built by one_of, never parsed)

    @property
    def is_equality(self) -> bool:
        """Whether the matcher pins `name` to known values (what the dispatch index uses)."""
        return self.op in ("=", "in")

    @property
    def index_values(self) -> tuple[str, ...]:
        return self.values or (self.value,)


def one_of(matchers: Sequence[Matcher]) -> Matcher | None:
    """`a="x"` or `a="y"` as one index key, when every matcher is an equality on one name."""
    names = {m.name for m in matchers}
    if not matchers or len(names) != 1 or any(m.op != "=" for m in matchers):
        return None
    tests = tuple(m.test for m in matchers)
    values = tuple(m.value for m in matchers)
    return Matcher(
        matchers[0].name,
        "in",
        "|".join(values),
        lambda obj: any(test(obj) for test in tests),
        matchers[0].get,
        values,
    )


def unquote(text: str) -> str:
    """A matcher value as Alertmanager reads it: optionally in double quotes, where only
    `\\"`, `\\\\` and `\\n` are escapes and any other backslash is kept as written."""
    quoted = text.startswith('"')
    body = text[1:] if quoted else text
    out: list[str] = []
    chars = iter(enumerate(body))
    last = len(body) - 1
    for i, char in chars:
        if char == "\\" and i < last:
            _, nxt = next(chars)
            out.append("\n" if nxt == "n" else nxt if nxt in '"\\' else "\\" + nxt)
        elif char == '"':
            if not quoted or i < last:
                raise ValueError(f"matcher value contains unescaped double quote: {text}")
            quoted = False
        else:
            out.append(char)
    if quoted:
        raise ValueError(f"matcher value contains unescaped double quote: {text}")
    return "".join(out)


def split_list(line: str) -> list[str]:
    """`{a="x", b=~"y,z"}` → `['a="x"', 'b=~"y,z"']`, as Alertmanager splits a matcher list.

    Braces are optional; commas inside double quotes do not split (`\\"` does
    not end a quoted part); empty parts (a trailing comma) are dropped.
    """
    text = line.strip().removeprefix("{").removesuffix("}")
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if char == ",":
            if not quoted:
                parts.append("".join(current).strip())
                current = []
                continue
        elif char == '"':
            quoted, escaped = quoted ^ (not escaped), False
        elif char == "\\":
            escaped = not escaped
        else:
            escaped = False
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _unquote(text: str) -> str:
    """Correlator's flavour also strips single quotes (`node='x'`), a form Alertmanager lacks."""
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    return unquote(text)


def as_text(value: Any) -> str:
    """A value as matchers see it: None is "", booleans are true/false, 4.0 is "4"."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_number(field: str, value: Any) -> float | None:
    if field == "severity":
        try:
            return parse_severity(value)
        except ValueError:
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_matcher(text: str, *, raw: bool = False) -> Matcher:
    """Parse and compile one matcher; raise ValueError with a readable message."""
    match = _SYNTAX.match(text)
    if match is None:
        raise ValueError(f'not a matcher: {text!r} (expected name="value", !=, =~, !~, >=, <)')
    name, op, value_text = match.groups()
    op = "=" if op == "==" else op
    value = _unquote(value_text)
    get = raw_getter(name) if raw else alert_getter(name)
    field = name.removeprefix("raw.")
    key = field if raw and "." not in field else None
    return Matcher(name, op, value, _compile(field, op, value, get, key), get)


def _compile(field: str, op: str, value: str, get: Getter, key: str | None) -> Predicate:
    """The predicate. `key` names a top-level raw key: an equality reads it inline, which
    spares a getter call per rule tried in normalize's hot path."""
    if op in _NUMERIC_OPS or (field in _NUMERIC_FIELDS and op in ("=", "!=")):
        return _numeric(field, op, value, get)
    if op in ("=~", "!~"):
        fullmatch = full_match(value)
        if field == "severity":
            return _severity_regex(fullmatch, get, negate=op == "!~")
        want = op == "=~"
        on_missing = fullmatch("") is want  # a missing field reads as ""

        def regex_test(obj: Any) -> bool:
            found = get(obj)
            if type(found) is not str:
                if found is None:
                    return on_missing
                found = as_text(found)
            return fullmatch(found) is want

        return regex_test
    if op == "=" and key is not None:

        def raw_equal(raw: dict[str, Any]) -> bool:
            found = raw.get(key)
            return (found if type(found) is str else as_text(found)) == value

        return raw_equal
    if op == "=":

        def equal(obj: Any) -> bool:
            found = get(obj)
            return (found if type(found) is str else as_text(found)) == value

        return equal

    def unequal(obj: Any) -> bool:
        found = get(obj)
        return (found if type(found) is str else as_text(found)) != value

    return unequal


def _severity_regex(fullmatch: Callable[[str], bool], get: Getter, *, negate: bool) -> Predicate:
    """Severity regexes see both the name and the number (`severity=~"critical|major"`)."""

    def hit(obj: Any) -> bool:
        value = get(obj)
        if fullmatch(as_text(value)):
            return True
        try:
            level = parse_severity(value)
        except ValueError:
            return False
        return fullmatch(SEVERITY_NAMES[level]) or fullmatch(str(level))

    if negate:
        return lambda obj: not hit(obj)
    return hit


def _numeric(field: str, op: str, value: str, get: Getter) -> Predicate:
    if field not in _NUMERIC_FIELDS:
        raise ValueError(f"numeric comparison {op} is only allowed on severity and tally")
    bound = _as_number(field, value)
    if bound is None:
        raise ValueError(
            f"{field} {op} needs a number{' or severity name' * (field == 'severity')}"
        )

    compare = _COMPARE[op]
    missing = op == "!="  # what a value that is not a number gives
    top = 5 if field == "severity" else float("inf")

    def test(obj: Any) -> bool:
        found = get(obj)
        if type(found) is int and 0 <= found <= top:  # row severity and tally always are
            return compare(found, bound)
        number = _as_number(field, found)
        return missing if number is None else compare(number, bound)

    return test


def compile_matchers(texts: Sequence[str], *, raw: bool = False) -> list[Matcher]:
    return [parse_matcher(text, raw=raw) for text in texts]


def all_of(predicates: Sequence[Predicate]) -> Predicate:
    """One predicate that holds when every one holds (the empty list always holds)."""
    preds = tuple(predicates)
    if not preds:
        return lambda obj: True
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds
        return lambda obj: first(obj) and second(obj)

    def test(obj: Any) -> bool:
        return all(pred(obj) for pred in preds)

    return test
