"""Matchers: Prometheus syntax, anchoring, numeric comparisons, name resolution."""

from __future__ import annotations

from typing import Any

import pytest

from correlator.model import Alert
from correlator.ruleset.matchers import parse_matcher


def _alert(**kw: object) -> Alert:
    base: dict[str, object] = {"identifier": "x", "node": "core-1", "alertgroup": "LinkDown"}
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('alertgroup="LinkDown"', True),
        ('alertgroup!="LinkDown"', False),
        ('node=~"core-.*"', True),
        ('node=~"core"', False),  # regexes are anchored
        ('node!~"edge-.*"', True),
        ("severity>=4", True),
        ("severity>4", False),
        ("severity>=major", True),
        ("severity<critical", True),
        ('severity="major"', True),
        ("tally<=1", True),
        ('labels.site="ams1"', True),
        ('site="ams1"', True),  # bare names fall back to labels
        ('team=""', True),  # a missing label reads as empty
        ('team!=""', False),
        ('alertname="LinkDown"', True),  # alertname is the alertgroup
        ("node=core-1", True),  # unquoted values are accepted
    ],
)
def test_matcher_on_alert(text: str, expected: bool) -> None:
    """Each operator and name form evaluates as in Prometheus/Alertmanager."""
    alert = _alert(severity=4, labels={"site": "ams1"})
    assert parse_matcher(text).test(alert) is expected


def test_raw_mode_reaches_into_nested_maps() -> None:
    """In normalize rules `raw.a.b` and bare `a` read the raw event."""
    raw = {"program": "ifmon", "meta": {"dc": "ams1"}, "count": 3, "up": True, "ratio": 2.0}
    assert parse_matcher('raw.meta.dc="ams1"', raw=True).test(raw)
    assert parse_matcher('program="ifmon"', raw=True).test(raw)
    assert parse_matcher('raw.program="ifmon"', raw=True).test(raw)
    assert not parse_matcher('raw.program="bgpd"', raw=True).test(raw)
    assert parse_matcher('count="3"', raw=True).test(raw)
    assert parse_matcher('up="true"', raw=True).test(raw)
    assert parse_matcher('ratio="2"', raw=True).test(raw)
    assert parse_matcher('missing=""', raw=True).test(raw)
    assert not parse_matcher('missing="x"', raw=True).test(raw)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just words", "not a matcher"),
        ('node=~"("', "bad regex"),
        ("node>=3", "only allowed on severity and tally"),
        ("severity>=banana", "needs a number or severity name"),
    ],
)
def test_bad_matchers_are_rejected(text: str, message: str) -> None:
    """A malformed matcher fails at load time with a readable reason."""
    with pytest.raises(ValueError, match=message):
        parse_matcher(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('severity=~"critical|major"', True),
        ('severity=~"4"', True),
        ('severity=~"warn.*"', False),
        ('severity!~"critical|major"', False),
    ],
)
def test_severity_regex_sees_names_and_numbers(text: str, expected: bool) -> None:
    """Pasted Alertmanager matchers name severities; the row holds a number: both match."""
    assert parse_matcher(text).test(_alert(severity=4)) is expected
    assert parse_matcher(text, raw=True).test({"severity": "major"}) is expected


def test_one_of_indexes_an_or_of_equalities() -> None:
    """`alertgroup="A"` or `alertgroup="B"` is one index key with two values."""
    from correlator.ruleset.index import RuleIndex
    from correlator.ruleset.matchers import one_of

    either = one_of([parse_matcher('alertgroup="A"'), parse_matcher('alertgroup="B"')])
    assert either is not None and either.is_equality
    index = RuleIndex([("pair", [either]), ("other", [parse_matcher('alertgroup="C"')])])
    assert list(index.candidates(_alert(alertgroup="A"))) == ["pair"]
    assert list(index.candidates(_alert(alertgroup="B"))) == ["pair"]
    assert list(index.candidates(_alert(alertgroup="Z"))) == []
    assert one_of([parse_matcher('a="1"'), parse_matcher('b="2"')]) is None


@pytest.mark.parametrize("second_key", [False, True])
def test_index_merges_unkeyed_items_in_rule_order(second_key: bool) -> None:
    """One indexed field or several: a hit comes with the unkeyed rules, in rule order."""
    from correlator.ruleset.index import RuleIndex

    other = [parse_matcher('node="n9"')] if second_key else []
    index = RuleIndex(
        [
            ("unkeyed-first", [parse_matcher("severity>=3")]),
            ("a", [parse_matcher('alertgroup="A"')]),
            ("unkeyed-last", []),
            ("n9", other),
        ]
    )
    expected_miss = ["unkeyed-first", "unkeyed-last"] + ([] if second_key else ["n9"])
    assert list(index.candidates(_alert(alertgroup="A"))) == [
        "unkeyed-first",
        "a",
        *expected_miss[1:],
    ]
    assert list(index.candidates(_alert(alertgroup="Z"))) == expected_miss
    assert list(index.candidates(_alert(alertgroup=None))) == expected_miss


@pytest.mark.parametrize("third_key", [False, True])
def test_index_merges_hits_on_several_keys_in_rule_order(third_key: bool) -> None:
    """An object hitting buckets of two (or three) indexed fields gets all their rules, in order."""
    from correlator.ruleset.index import RuleIndex

    items: list[tuple[str, list[Any]]] = [
        ("by-node", [parse_matcher('node="n1"')]),
        ("unkeyed", []),
        ("by-group", [parse_matcher('alertgroup="A"')]),
    ]
    if third_key:
        items.append(("by-key", [parse_matcher('alertkey="k"')]))
    index = RuleIndex(items)
    tail = ["by-key"] if third_key else []
    hit = _alert(node="n1", alertgroup="A", alertkey="k")
    assert list(index.candidates(hit)) == ["by-node", "unkeyed", "by-group", *tail]
    assert list(index.candidates(_alert(node="n1", alertgroup="B"))) == ["by-node", "unkeyed"]
    assert list(index.candidates(_alert(node="n2", alertgroup="A"))) == ["unkeyed", "by-group"]
    assert list(index.candidates(_alert(node="n2", alertgroup="B"))) == ["unkeyed"]


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        (r'node=~"web\d+"', "web12", True),  # a backslash that escapes nothing is kept
        (r'node=~"web\d+"', "webx", False),
        (r'node=~"10\.0\..*"', "10.0.3.4", True),
        (r'node=~"10\.0\..*"', "10x0.3.4", False),
        (r'node="say \"hi\""', 'say "hi"', True),  # \" is a quote
        (r'node="C:\\temp"', "C:\\temp", True),  # \\ is one backslash
        (r'node="a\nb"', "a\nb", True),  # \n is a line feed
        (r'node="a\tb"', "a\\tb", True),  # any other escape is kept as written
        (r'node="ends\"', None, None),  # the quote is escaped: no closing quote
    ],
)
def test_values_use_alertmanager_quoting(text: str, value: str | None, expected: bool) -> None:
    """Quoted values unescape only `\\"`, `\\\\` and `\\n`, as Alertmanager does: pasted lines
    like `'instance=~"web\\d+"'` load and mean what they mean there."""
    if value is None:
        with pytest.raises(ValueError, match="unescaped double quote"):
            parse_matcher(text)
        return
    assert parse_matcher(text).test(_alert(node=value)) is expected
    assert parse_matcher(text, raw=True).test({"node": value}) is expected


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ('node=~"[[:alpha:]]+"', "abc", True),  # POSIX classes, as in RE2
        ('node=~"[[:alpha:]]+"', "a1", False),
        (r'node=~"\w+"', "é", False),  # RE2's \w is ASCII
        (r'node=~"\pL+"', "é", True),
        ('node=~"(?i)CORE-.*"', "core-1", True),
        ('node=~"a|b"', "a", True),  # an alternation is anchored as a whole
        ('node=~"a|b"', "ab", False),
        ('node=~"core-.*"', "core-1\nx", False),  # `.` does not match a line feed
        ('node!~"core-.*"', "edge-1", True),
    ],
)
def test_regexes_are_re2(text: str, value: str, expected: bool) -> None:
    """Regexes follow RE2 (Prometheus and Alertmanager), anchored at both ends."""
    assert parse_matcher(text).test(_alert(node=value)) is expected
    assert parse_matcher(text, raw=True).test({"node": value}) is expected


@pytest.mark.parametrize(
    ("pattern", "hint"),
    [
        (r"(a)\1", "backreferences"),
        ("a(?=b)", "lookaround"),
        ("a(?!b)", "lookaround"),
        ("(?<=a)b", "lookaround"),
        ("(", "missing )"),
    ],
)
def test_constructs_re2_refuses_are_errors(pattern: str, hint: str) -> None:
    """A regex RE2 cannot run is refused at load time with the reason."""
    with pytest.raises(ValueError, match="bad regex") as info:
        parse_matcher(f'node=~"{pattern}"')
    assert hint in str(info.value)


@pytest.mark.timeout(5)
def test_nested_quantifiers_run_in_linear_time() -> None:
    """`(a+)+` against a long non-matching value answers at once (RE2 never backtracks)."""
    matcher = parse_matcher('node=~"(a+)+"')
    assert matcher.test(_alert(node="a" * 40 + "b")) is False
    assert matcher.test(_alert(node="a" * 40)) is True


def test_regex_answers_stay_right_past_the_cache() -> None:
    """Per-value memoization of regex answers is bounded and never changes an answer."""
    matcher = parse_matcher('node=~"n[0-9]*7"')
    for round_ in range(2):
        for i in range(10_000):
            assert matcher.test(_alert(node=f"n{i}")) is (i % 10 == 7), (round_, i)


@pytest.mark.parametrize(
    ("value", "level"),
    [("info", 1), ("Info", 1), ("INFO", 1), ("error", 4), ("Error", 4), (" error ", 4)],
)
def test_prometheus_severity_words_are_accepted(value: str, level: int) -> None:
    """`info` and `error`, Prometheus's usual words, are severities on input."""
    from correlator.model import parse_severity

    assert parse_severity(value) == level


def test_severity_words_in_our_matchers() -> None:
    """`severity!="info"` loads in `match:` and compares levels (info = indeterminate)."""
    assert parse_matcher('severity!="info"').test(_alert(severity=5))
    assert not parse_matcher('severity!="info"').test(_alert(severity=1))
    assert parse_matcher("severity>=error").test(_alert(severity=4))


@pytest.mark.parametrize(
    "pattern",
    ["up|down", "core-.*", r".*\.lan", ".*db.*", r"10\.0\.0\.1", "a b:c/d@e", "x", "(a+)+"],
)
def test_literal_shapes_answer_as_re2_does(pattern: str) -> None:
    """The string-operation shortcuts for literal shapes give RE2's answer on every value."""
    import re2

    from correlator.ruleset.regex import full_match

    test = full_match(pattern)
    values = ["", "up", "down", "updown", "core-1", "core-", "xcore-1", "core-1\n", "h.lan",
              "hxlan", ".lan\n", "mydb1", "db", "d\nb", "10.0.0.1", "10x0.0.1", "a b:c/d@e",
              "x", "X", "aaa", "aab"]  # fmt: skip
    for value in values:
        assert test(value) is (re2.fullmatch(pattern, value) is not None), value
