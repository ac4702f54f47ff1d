"""Templates: the memo and the fast paths render exactly what Jinja2 renders."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.engine import Engine
from correlator.ruleset import templates
from correlator.ruleset.templates import Template

# Templates whose result depends on more than scalar dotted paths, or on how a
# value is spelled (missing vs null, -0.0 vs 0.0, 1 vs True): each must render,
# through the memo and the fast paths, what Jinja2 renders for the same context.
CORPUS = [
    "{{ raw.get('host', 'unknown') }}",
    "{{ raw | tojson }}",
    "{{ raw | length }}",
    "{{ raw[raw.key] }}",
    "{{ raw }}",
    "host={{ raw }}",
    "{{ raw.a | default('z') }}",
    "{{ raw.a.b | default('z') }}",
    "{{ a.b.c is defined }}",
    "{{ a | tojson }}",
    "{{ a | string }}{{ b }}",
    "{{ 'x' if a else 'y' }}",
    "{{ a[0] }}",
    "{{ a[b] }}",
    "{{ a ~ b }}",
    "{{ a == b }}",
    "{{ 'a' in a }}",
    "{{ a.items() | list }}",
    "{{ a.b ~ a['b'] }}",
    "{% if a is mapping %}{{ a | dictsort }}{% endif %}",
    "{{ a.upper() if a is string else a }}",
    "{{ a | float }}",
    "{{ (a or b) | string }}",
    "{{ dict(k=a) | tojson }}",
    "{{ namespace(v=a).v }}",
    "{{ a | attr('b') }}",
    "{{ members | map(attribute='a') | join(',') }}",
    "{{ group.a ~ (group | tojson) }}",
    "{% for m in a %}{{ m }}{% endfor %}",
    "{{ a | first if a is iterable else a }}",
]

SCALARS = st.sampled_from(["a", "b", "", None, 0, 1, 1.0, -0.0, 0.0, True, False])
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "host", "key"]), inner, max_size=2)
    ),
    max_leaves=4,
)
CONTEXTS = st.dictionaries(
    st.sampled_from(["a", "b", "host", "key", "extra", "members", "group"]), VALUES, max_size=5
)


def _jinja(source: str, context: dict[str, Any], prefix: str | None) -> str:
    """What Jinja2 itself renders, with no memo and no fast path."""
    if prefix is not None:
        context = {**context, prefix: context}
    try:
        return templates._ENV.from_string(source).render(context)
    except Exception as exc:
        return f"<template error: {type(exc).__name__}: {exc}>"


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(CORPUS),
    prefix=st.sampled_from([None, "raw"]),
    contexts=st.lists(CONTEXTS, min_size=2, max_size=6),
)
def test_memoized_renders_equal_unmemoized_renders(
    source: str, prefix: str | None, contexts: list[dict[str, Any]]
) -> None:
    """Over any sequence of contexts, a template renders what Jinja2 renders for each."""
    template = Template(source, prefix=prefix)
    for context in contexts:
        assert template.render(context) == _jinja(source, context, prefix), context


def test_templates_reading_the_whole_event_are_not_memoized(
    engine: Callable[[str], Engine],
) -> None:
    """`raw.get(..)`, `raw | tojson`, `raw | length`, `raw[raw.key]` render per event."""
    eng = engine(
        """
        normalize:
          - name: probe
            match: ['raw.src="probe"']
            fields: {node: "{{ raw.get('host', 'unknown') }}", alertgroup: Probe,
                     alertkey: "{{ raw[raw.key] }}", summary: "{{ raw | tojson }}"}
            annotations: {nkeys: "{{ raw | length }}"}
        """
    )
    events = [
        {"src": "probe", "host": "alpha", "key": "src"},
        {"src": "probe", "host": "beta", "extra": 1, "key": "host"},
        {"src": "probe", "host": "gamma"},
    ]
    for event in events:
        eng.process(event, 1)
    rows = {row.identifier: row for row in eng.table.rows.values()}
    assert sorted(rows) == ["alpha:Probe:probe:", "beta:Probe:beta:", "gamma:Probe::"]
    beta = rows["beta:Probe:beta:"]
    assert beta.summary == '{"extra": 1, "host": "beta", "key": "host", "src": "probe"}'
    assert beta.annotations["nkeys"] == "4" and beta.tally == 1


def test_each_template_text_is_compiled_once_per_load(
    ruleset: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation, building and the engine's operators share one parse and compile per text."""
    parsed: Counter[str] = Counter()
    compiled: Counter[int] = Counter()
    parse, from_string = templates._ENV.parse, templates._ENV.from_string

    def counting_parse(source: str, *args: Any, **kwargs: Any) -> Any:
        parsed[source] += 1
        return parse(source, *args, **kwargs)

    kept: list[Any] = []  # a freed tree's id could be reused by the next one: keep them all

    def counting_compile(source: Any, *args: Any, **kwargs: Any) -> Any:
        kept.append(source)
        compiled[id(source)] += 1
        return from_string(source, *args, **kwargs)

    monkeypatch.setattr(templates._ENV, "parse", counting_parse)
    monkeypatch.setattr(templates._ENV, "from_string", counting_compile)
    severity = "{{ 'critical' if raw.level == 'err' else 'minor' }}"
    rules = "\n".join(
        f"""
          - name: p{i}
            match: ['raw.program="p{i}"']
            fields: {{node: "{{{{ raw.host }}}}", alertgroup: G, severity: "{severity}",
                      summary: "{{{{ raw.host }}}} {i}: {{{{ raw.msg | upper }}}}"}}"""
        for i in range(3)
    )
    loaded = ruleset(
        f"""
        normalize:{rules}
        correlate:
          - name: storm
            kind: threshold
            match: ['alertgroup="G"']
            count: 2
            window: 1m
            alert: {{summary: "{{{{ count }}}} in {{{{ group | length }}}}"}}
        """
    )
    Engine(loaded)
    assert parsed[severity] == 1
    assert parsed["{{ count }} in {{ group | length }}"] == 1
    assert set(parsed.values()) == {1}
    assert set(compiled.values()) == {1} and len(compiled) == 5


BOUND = [
    "{{ count }} down at {{ group['labels.site'] }}",
    "{{ group.site }}",
    "{{ count }}",
    "{{ group.site }}-{{ group.a.b }}:{{ rule }} {{ count }}{{ count }}",
    "at {{ group.missing.x }} {{ members }} {{ node }}",
    "{{ rule }}",
    "no references",
]
GROUPS = st.dictionaries(
    st.sampled_from(["site", "labels.site", "a"]), VALUES | st.just("long"), max_size=3
)
LONG = "x" * 70_000  # longer than a render may be: cut


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(BOUND),
    group=GROUPS,
    rule=st.sampled_from(["r", "", None]),
    contexts=st.lists(CONTEXTS, min_size=1, max_size=4),
)
def test_a_template_bound_to_some_values_renders_as_it_does_with_them(
    source: str, group: dict[str, Any], rule: Any, contexts: list[dict[str, Any]]
) -> None:
    """Bound to `group` and `rule`, a template renders for any context holding them what it
    renders unbound, cut or not, and reads only what is left."""
    template = Template(source)
    group = {k: LONG if v == "long" else v for k, v in group.items()}
    bound = template.bound({"group": group, "rule": rule})
    assert bound is not None
    render, names = bound
    assert names == (template.names or frozenset()) - {"group", "rule"}
    for context in contexts:
        whole = {**context, "group": group, "rule": rule}
        limits = templates.sandbox.LIMITS
        hits = limits.hits
        text = render(context)
        cut, hits = limits.hits - hits, limits.hits
        assert text == template.render(whole)
        assert limits.hits - hits == cut  # a cut is counted alike


@settings(max_examples=200, deadline=None)
@given(
    source=st.sampled_from(["x {{ a }} y", "{{ a }}!", "n={{ b }}", "{{ a }} {{ b }}"]),
    value=VALUES | st.just("long"),
)
def test_text_with_references_renders_what_jinja2_renders(source: str, value: Any) -> None:
    """The interpolators (one reference between texts, or several) against Jinja2 itself."""
    context = {"a": LONG if value == "long" else value, "b": value}
    expected = _jinja(source, context, None)
    if len(expected) > templates.MAX_OUTPUT:
        expected = templates.sandbox.cut(expected)
    assert Template(source).render(context) == expected
