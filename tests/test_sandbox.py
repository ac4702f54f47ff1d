"""Rendering is bounded: loops, value sizes and output, each limit shown and counted."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from correlator.engine import Engine
from correlator.ruleset.sandbox import LIMITS, MAX_OUTPUT, TRUNCATED
from correlator.ruleset.templates import Template

HUGE: list[tuple[str, dict[str, Any]]] = [
    ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}x", {}),
    ("{% for i in range(9999) %}{% for j in a %}{{ j }}{% endfor %}{% endfor %}", {"a": [0] * 9}),
    ("{{ raw.msg * raw.n }}", {"msg": "0123456789", "n": 10_000_000}),
    ("{{ 'x' * 10**9 }}", {}),
    ("{{ [1, 2] * 10**9 }}", {}),
    ("{{ range(10**9) | list }}", {}),
    ("{{ range(9000) | join('x' * 60000) }}", {}),
    ("{{ '%0999999999d' % 1 }}", {}),
    ("{{ '%*d' % (999999999, 1) }}", {}),
    ("{{ '%s' | format('x' * 999999 ~ 'y' * 999999) }}", {}),
    ("{{ '{:>999999999}'.format(1) }}", {}),
    ("{{ '{:>{w}}'.format(1, w=999999999) }}", {}),
    ("{{ 2 ** (10**9) }}", {}),
    ("{{ (9 ** 9999) * (9 ** 9999) * (9 ** 9999) * (9 ** 9999) * (9 ** 9999) }}", {}),
    ("{{ 'x' | center(10**9) }}", {}),
    ("{{ 'x'.ljust(10**9) }}", {}),
    ("{{ 'x\tx'.expandtabs(10**9) }}", {}),
    ("{{ 'ab' | indent(10**9, true) }}", {}),
    ("{{ ('ab' * 30000).replace('', 'x' * 60000) }}", {}),
    ("{{ ('ab' * 30000) | replace('', 'x' * 60000) }}", {}),
    ("{{ range(3) | batch(10**9, 'x') | list }}", {}),
    ("{{ ('x' * 60000).join(range(9000)) }}", {}),
    ("{{ (['x' * 60000] * 60000) | join }}", {}),
    ("{{ (['x' * 60000] * 9) * 9 }}", {}),
    ("{{ {}.fromkeys(range(9999), 'x' * 60000) | tojson }}", {}),
    ("{{ range(9999) | map('center', 60000) | list }}", {}),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s | length }}",
        {},
    ),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}"
        "{% endfor %}{{ ns.s | length }}",
        {},
    ),
    (
        "{% set big %}{% for i in range(9999) %}{{ 'x' * 60000 }}{% endfor %}{% endset %}"
        "{{ big | length }}",
        {},
    ),
    (
        "{% macro m() %}{% for i in range(9999) %}{{ 'x' * 60000 }}{% endfor %}{% endmacro %}"
        "{{ m() | length }}",
        {},
    ),
    ("{% for x in a recursive %}{{ loop(a) }}{% endfor %}", {"a": [1]}),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("source", "context"), HUGE)
def test_templates_that_would_build_huge_values_render_a_marker(
    source: str, context: dict[str, Any]
) -> None:
    """Loops, repetition, formats and joins beyond the bounds stop with a marker, in bounded memory."""
    before = LIMITS.hits
    tracemalloc.start()
    try:
        text = Template(source, prefix="raw").render(context)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert text.startswith(("<template limit: ", "<template error: RecursionError"))
    assert len(text) <= MAX_OUTPUT + len(TRUNCATED)
    assert peak < 64 * 1024 * 1024
    assert LIMITS.hits >= before + (not text.startswith("<template error"))


def test_output_over_64_kib_is_truncated_with_a_marker() -> None:
    """A long result is cut at 64 KiB and says so; the start of the text is kept."""
    template = Template("{% for i in range(100) %}{{ raw.msg }}{% endfor %}", prefix="raw")
    before = LIMITS.hits
    text = template.render({"msg": "y" * 1000})
    assert text == "y" * MAX_OUTPUT + TRUNCATED
    assert LIMITS.hits == before + 1


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{% for m in members %}{{ m.node }}{{ ',' if not loop.last }}{% endfor %}", "a,b"),
        ("{{ members | map(attribute='node') | join(', ') }}", "a, b"),
        ("{{ '%-6s|' % count }}{{ '{:>4}'.format(count) }}", "2     |   2"),
        ("{{ ('-' * 3) ~ (count * 2) ~ (2 ** 10) }}", "---41024"),
        ("{{ range(3) | list }} {{ 'a b'.replace(' ', '_') | center(5) }}", "[0, 1, 2]  a_b "),
        (
            "{{ ','.join(['x', 'y']) }} {{ [1] + [2] }} {{ 'ab' | indent(2, true) }}",
            "x,y [1, 2]   ab",
        ),
    ],
)
def test_ordinary_templates_are_not_limited(source: str, expected: str) -> None:
    """Loops over members, joins, formats and arithmetic of ordinary sizes render as in Jinja2."""
    before = LIMITS.hits
    members = [{"node": "a"}, {"node": "b"}]
    assert Template(source).render({"members": members, "count": 2}) == expected
    assert LIMITS.hits == before


def test_limited_renders_are_counted_and_the_engine_goes_on(
    engine: Callable[[str], Engine],
) -> None:
    """A summary built too big is cut or refused, counted in stats, and the alert still flows."""
    eng = engine(
        """
        normalize:
          - name: probe
            match: ['raw.src="probe"']
            fields: {node: "{{ raw.host }}", alertgroup: Probe, summary: "{{ raw.msg * raw.n }}"}
        """
    )
    eng.process({"src": "probe", "host": "a", "msg": "0123456789", "n": 10_000_000}, 1)
    eng.process({"src": "probe", "host": "b", "msg": "0123456789", "n": 10_000}, 2)
    eng.process({"src": "probe", "host": "c", "msg": "ok", "n": 1}, 3)
    rows = eng.table.rows
    assert rows["a:Probe::"].summary.startswith("<template limit: ")
    assert rows["b:Probe::"].summary == "0123456789" * 6553 + "012345" + TRUNCATED
    assert rows["c:Probe::"].summary == "ok"
    assert eng.stats.template_limited == 2


@pytest.mark.parametrize("source", ["{{ raw.msg }}", "{{ raw.m.msg }}", "<{{ msg }}>", "{{ m }}"])
def test_plain_references_are_cut_at_64_kib_too(source: str) -> None:
    """The fast paths (no Jinja2) bound their text like any render, and count it."""
    template = Template(source, prefix="raw")
    before = LIMITS.hits
    text = template.render({"msg": "z" * 100_000, "m": {"msg": "z" * 100_000}})
    assert len(text) == MAX_OUTPUT + len(TRUNCATED) and text.endswith(TRUNCATED)
    assert LIMITS.hits == before + 1


def test_a_memoized_template_counts_its_limit_on_every_render() -> None:
    """A result cut by a limit is not kept in the memo: each render is counted."""
    template = Template("{{ raw.msg * raw.n }}", prefix="raw")
    before = LIMITS.hits
    for _ in range(3):
        assert template.render({"msg": "x", "n": 10**8}).startswith("<template limit: ")
    assert LIMITS.hits == before + 3
