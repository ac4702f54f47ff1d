"""The Alertmanager label view: how `inhibit_rules` (and later `route`, silences) see an alert."""

from __future__ import annotations

import pytest

from correlator.model import Alert
from correlator.ruleset.labelview import label_value, parse_label_matcher, parse_label_matchers


def _alert(**kw: object) -> Alert:
    base: dict[str, object] = {"identifier": "x", "node": "web1", "alertgroup": "HighLatency"}
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def test_view_is_labels_plus_fields_as_text() -> None:
    """Fields read as labels: severity by name, alertname = alertgroup, numbers as text."""
    alert = _alert(severity=5, tally=3, labels={"site": "ams1"})
    assert label_value(alert, "severity") == "critical"
    assert label_value(alert, "alertname") == "HighLatency"
    assert label_value(alert, "node") == "web1"
    assert label_value(alert, "tally") == "3"
    assert label_value(alert, "owner") == ""  # None reads as the empty string
    assert label_value(alert, "site") == "ams1"
    assert label_value(alert, "missing") == ""


def test_a_label_wins_over_a_field_of_the_same_name() -> None:
    """A label the alert carries is what Alertmanager would see; the field only fills gaps."""
    alert = _alert(
        severity=1,
        labels={"type": "db", "severity": "info", "node": "n-label", "alertname": "Other"},
    )
    assert label_value(alert, "type") == "db"
    assert label_value(alert, "severity") == "info"
    assert label_value(alert, "node") == "n-label"
    assert label_value(alert, "alertname") == "Other"
    assert parse_label_matcher('type="db"').test(alert)
    assert not parse_label_matcher('type="problem"').test(alert)
    assert _alert(labels={"type": ""}).type == "problem"
    assert parse_label_matcher('type="problem"').test(_alert(labels={"type": ""}))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('severity="critical"', True),
        ('severity="Critical"', False),  # case-sensitive, as in Alertmanager
        ('severity="5"', False),  # the view holds the name, not the number
        ('severity!="info"', True),
        ('severity=~"warning|critical"', True),
        ('severity=~"crit"', False),  # anchored
        ('alertname="HighLatency"', True),
        ('node=~"web\\d+"', True),
        ("node=web1", True),  # unquoted value
        ('team=""', True),  # a missing label reads as ""
        ('team!=""', False),
        ('team=~".*"', True),
        ('site="ams1"', True),
        ('labels.site="ams1"', True),  # correlator's explicit form still works
        ("severity>=4", True),  # correlator's extension: numeric on the row's severity
        ('tally="1"', True),
        ('job:rate="x"', False),  # Prometheus label names may hold colons
    ],
)
def test_label_matcher_semantics(text: str, expected: bool) -> None:
    """Case-sensitive string comparison on the label view; RE2 regexes anchored at both ends."""
    alert = _alert(severity=5, labels={"site": "ams1"})
    assert parse_label_matcher(text).test(alert) is expected


@pytest.mark.parametrize(
    ("line", "pairs"),
    [
        ('{alertname="A", site=~"x,y"}', [("alertname", "A"), ("site", "x,y")]),
        ("{foo = bar, dings != bums, }", [("foo", "bar"), ("dings", "bums")]),
        ("foo=bar,dings!=bums", [("foo", "bar"), ("dings", "bums")]),
        (r'{quote="She said: \"Hi, ladies!\""}', [("quote", 'She said: "Hi, ladies!"')]),
        ('statuscode=~"5.."', [("statuscode", "5..")]),
        ("severity = critical", [("severity", "critical")]),
    ],
)
def test_matcher_lists_parse_as_in_alertmanager(line: str, pairs: list[tuple[str, str]]) -> None:
    """One entry may hold several matchers, with or without braces, as Alertmanager's parser
    takes them (examples from its documentation); commas in quotes do not split."""
    assert [(m.name, m.value) for m in parse_label_matchers(line)] == pairs


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{}", "empty matcher"),
        ('a="b', "unescaped double quote"),
        ('a="b"c"', "unescaped double quote"),
        ("a~b", "bad matcher"),
        ('a=~"(a)\\1"', "backreferences"),
        ("node>=3", "only allowed on severity and tally"),
    ],
)
def test_bad_matcher_lines(line: str, message: str) -> None:
    """What Alertmanager refuses is refused, with its reason."""
    with pytest.raises(ValueError, match=message):
        parse_label_matchers(line)


# Alertmanager's TestMatchers (pkg/labels/parse_test.go): input, then (name, op, value) or error
AM_PARSE_CASES: list[tuple[str, list[tuple[str, str, str]] | str]] = [
    ('{foo="bar"}', [("foo", "=", "bar")]),
    ('{foo=~"bar.*"}', [("foo", "=~", "bar.*")]),
    ('{foo!="bar"}', [("foo", "!=", "bar")]),
    ('{foo!~"bar.*"}', [("foo", "!~", "bar.*")]),
    ('{foo="bar", baz!="quux"}', [("foo", "=", "bar"), ("baz", "!=", "quux")]),
    ('{foo="bar", baz!~"quux.*"}', [("foo", "=", "bar"), ("baz", "!~", "quux.*")]),
    (
        '{foo="bar",baz!~".*quux", derp="wat"}',
        [("foo", "=", "bar"), ("baz", "!~", ".*quux"), ("derp", "=", "wat")],
    ),
    (
        '{foo="bar", baz!="quux", derp="wat"}',
        [("foo", "=", "bar"), ("baz", "!=", "quux"), ("derp", "=", "wat")],
    ),
    (
        '{foo="bar", baz!~".*quux.*", derp="wat"}',
        [("foo", "=", "bar"), ("baz", "!~", ".*quux.*"), ("derp", "=", "wat")],
    ),
    (
        '{foo="bar", instance=~"some-api.*"}',
        [("foo", "=", "bar"), ("instance", "=~", "some-api.*")],
    ),
    ('{foo=""}', [("foo", "=", "")]),
    ('{foo="bar,quux", job="job1"}', [("foo", "=", "bar,quux"), ("job", "=", "job1")]),
    ('{foo = "bar", dings != "bums", }', [("foo", "=", "bar"), ("dings", "!=", "bums")]),
    ("foo=bar,dings!=bums", [("foo", "=", "bar"), ("dings", "!=", "bums")]),
    (
        r'{quote="She said: \"Hi, ladies! That' + "'" + r's gender-neutral…\""}',
        [("quote", "=", 'She said: "Hi, ladies! That\'s gender-neutral…"')],
    ),
    ('statuscode=~"5.."', [("statuscode", "=~", "5..")]),
    ("tricky=~~~", [("tricky", "=~", "~~")]),
    (r"trickier==\\=\=\"", [("trickier", "=", r'=\=\="')]),
    (
        r'contains_quote != "\"" , contains_comma !~ "foo,bar" , ',
        [("contains_quote", "!=", '"'), ("contains_comma", "!~", "foo,bar")],
    ),
    ("job=", "matcher value is not present: job="),
    ('job="value', 'matcher value contains unescaped double quote: "value'),
    ('job=value"', 'matcher value contains unescaped double quote: value"'),
    (r'trickier==\\=\=\""', "matcher value contains unescaped double quote"),
    ('contains_unescaped_quote = foo"bar', "matcher value contains unescaped double quote"),
    ('{invalid-name = "valid label"}', "bad matcher format"),
    ('{foo=~"invalid[regexp"}', "bad regex 'invalid\\[regexp': missing \\]"),
    (r'"{foo=\"bar"}', "bad matcher format"),
    (r'"foo=\"bar"', "bad matcher format"),
    (r'"foo=\"bar\""', "bad matcher format"),
    (r'"foo=\"bar\"', "bad matcher format"),
    (r'"{foo=\"bar\"}"', "bad matcher format"),
    ('"foo="bar""', "bad matcher format"),
]


@pytest.mark.parametrize(("line", "want"), AM_PARSE_CASES)
def test_alertmanager_parser_cases(line: str, want: list[tuple[str, str, str]] | str) -> None:
    """Alertmanager's own parser test cases give the same matchers, or refuse the same lines."""
    if isinstance(want, str):
        with pytest.raises(ValueError, match=want):
            parse_label_matchers(line)
        return
    assert [(m.name, m.op, m.value) for m in parse_label_matchers(line)] == want
