"""Regexes from rule text: RE2, anchored at both ends, as in Prometheus and Alertmanager.

RE2 runs in time linear in the input, so no rule can make the engine backtrack
for seconds on one event (`(a+)+` against a long value). It refuses the few
constructs that need backtracking (backreferences, lookaround); the reason is
a ValueError that the loader reports at the rule's `file:line:col`.

RE2's Python binding costs microseconds per call, several times Python's `re`.
The hot path is kept cheap two ways: the common literal shapes (`up|down`,
`core-.*`, `.*\\.lan`) become set lookups and string tests, and other patterns
remember their answer per distinct value (Alertmanager does the same), in a
bounded map.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

import re2

_OPTIONS: Final = re2.Options()
_OPTIONS.log_errors = False  # refusals are reported to the rule author, not logged to stderr

_CACHE_MAX: Final = 4096  # answers remembered per pattern; the map starts over when full
# Shapes that need no regex engine; `.` never matches a line feed, in RE2 as here.
_WORDS: Final = re.compile(r"[A-Za-z0-9_-]+(?:\|[A-Za-z0-9_-]+)*")  # `up|down`
_AFFIX: Final = re.compile(r"(\.\*)?((?:[A-Za-z0-9_\-:/@ ]|\\\.)+)(\.\*)?")  # `web-.*`, `.*\.lan`
_BACKREFERENCE: Final = re.compile(r"invalid escape sequence: \\[1-9]")
_LOOKAROUND: Final = ("=", "!", "<=", "<!")


def _reason(exc: Exception) -> str:
    message = exc.args[0] if exc.args else str(exc)
    text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
    if _BACKREFERENCE.match(text):
        return f"{text} (RE2 has no backreferences)"
    if text.startswith(tuple(f"invalid perl operator: (?{op}" for op in _LOOKAROUND)):
        return f"{text} (RE2 has no lookaround)"
    return text


def check(pattern: str) -> None:
    """Raise ValueError with RE2's reason if RE2 cannot compile `pattern`."""
    try:
        re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        raise ValueError(f"bad regex '{pattern}': {_reason(exc)}") from None


def full_match(pattern: str) -> Callable[[str], bool]:
    """A predicate: does the whole text match `pattern`? (ValueError if RE2 refuses it)."""
    check(pattern)
    literal = _literal_test(pattern)
    if literal is not None:
        return literal
    fullmatch = re2.compile(pattern, options=_OPTIONS).fullmatch
    cache: dict[str, bool] = {}

    def test(text: str) -> bool:
        hit = cache.get(text)
        if hit is None:
            hit = fullmatch(text.encode()) is not None  # bytes skip the binding's offset mapping
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[text] = hit
        return hit

    return test


def _literal_test(pattern: str) -> Callable[[str], bool] | None:
    """The common literal shapes as string operations: `a|b`, `pre.*`, `.*suf`, `.*part.*`."""
    if _WORDS.fullmatch(pattern):
        return frozenset(pattern.split("|")).__contains__
    shape = _AFFIX.fullmatch(pattern)
    if shape is None:
        return None
    lead, body, trail = shape.groups()
    text = body.replace("\\.", ".")
    if lead and trail:
        return lambda value: text in value and "\n" not in value
    if trail:
        return lambda value: value.startswith(text) and "\n" not in value
    if lead:
        return lambda value: value.endswith(text) and "\n" not in value
    return lambda value: value == text
