"""Alertmanager's own routing tests (dispatch/route_test.go), restated as our YAML.

Each case gives a label set and what Alertmanager's `Route.Match` returns:
the routes' options (receiver, group_by, group_wait, group_interval,
repeat_interval) and keys, in order. `TestRouteWalk`, `TestInheritParentGroupByAll`
and `TestRouteID` are restated below them. The label sets use no label named
after an alert field, so the label view (labels plus fields) reads them as
Alertmanager reads its label sets.
"""

from __future__ import annotations

from typing import Any

import pytest

from correlator.model import Alert
from correlator.route.tree import Route, RouteOpts, RouteSpec, build
from correlator.ruleset.yamlpos import load

LEGACY = """
receiver: 'notify-def'
routes:
- match:
    owner: 'team-A'
  receiver: 'notify-A'
  routes:
  - match:
      env: 'testing'
    receiver: 'notify-testing'
    group_by: [...]
  - match:
      env: "production"
    receiver: 'notify-productionA'
    group_wait: 1m
    continue: true
  - match_re:
      env: "produ.*"
      job: ".*"
    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']
- match_re:
    owner: 'team-(B|C)'
  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'
- match:
    group_by: 'role'
  group_by: ['role']
  routes:
  - match:
      env: 'testing'
    receiver: 'notify-testing'
    routes:
    - match:
        wait: 'long'
      group_wait: 2m
"""

MATCHERS = """
receiver: 'notify-def'
routes:
- matchers: ['{owner="team-A"}', '{level!="critical"}']
  receiver: 'notify-A'
  routes:
  - matchers: ['{env="testing"}', '{baz!~".*quux"}']
    receiver: 'notify-testing'
    group_by: [...]
  - matchers: ['{env="production"}']
    receiver: 'notify-productionA'
    group_wait: 1m
    continue: true
  - matchers: [ env=~"produ.*", job=~".*"]
    receiver: 'notify-productionB'
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: ['job']
- matchers: [owner=~"team-(B|C)"]
  group_by: ['foo', 'bar']
  group_wait: 2m
  receiver: 'notify-BC'
- matchers: [group_by="role"]
  group_by: ['role']
  routes:
  - matchers: ['{env="testing"}']
    receiver: 'notify-testing'
    routes:
    - matchers: [wait="long"]
      group_wait: 2m
"""

# the same tree, both syntaxes mixed (TestRouteMatchersAndMatch)
MIXED = MATCHERS.replace(
    """  - matchers: ['{env="production"}']""", """  - match:\n      env: "production\""""
).replace("""- matchers: [owner=~"team-(B|C)"]""", """- match_re:\n    owner: 'team-(B|C)'""")

DEF = RouteOpts()


def opts(
    receiver: str, *, by: tuple[str, ...] = (), all_: bool = False, **times: float
) -> RouteOpts:
    return RouteOpts(receiver, frozenset(by), all_, **times)


PROD_A = opts("notify-productionA", group_wait=60)
PROD_B = opts("notify-productionB", by=("job",), group_wait=30, group_interval=300,
              repeat_interval=3600)  # fmt: skip


def cases(owner_a: str, testing: str, prod_b: str, bc: str) -> list[Any]:
    """The eight cases of TestRouteMatch, with the keys each syntax prints."""
    return [
        ({"owner": "team-A"}, [opts("notify-A")], [f"{{}}/{owner_a}"]),
        ({"owner": "team-A", "env": "unset"}, [opts("notify-A")], [f"{{}}/{owner_a}"]),
        (
            {"owner": "team-C"},
            [opts("notify-BC", by=("foo", "bar"), group_wait=120)],
            [f"{{}}/{bc}"],
        ),
        (
            {"owner": "team-A", "env": "testing"},
            [opts("notify-testing", all_=True)],
            [f"{{}}/{owner_a}/{testing}"],
        ),
        (
            {"owner": "team-A", "env": "production"},
            [PROD_A, PROD_B],
            [f'{{}}/{owner_a}/{{env="production"}}', f"{{}}/{owner_a}/{prod_b}"],
        ),
        ({"group_by": "role"}, [opts("notify-def", by=("role",))], ['{}/{group_by="role"}']),
        (
            {"env": "testing", "group_by": "role"},
            [opts("notify-testing", by=("role",))],
            ['{}/{group_by="role"}/{env="testing"}'],
        ),
        (
            {"env": "testing", "group_by": "role", "wait": "long"},
            [opts("notify-testing", by=("role",), group_wait=120)],
            ['{}/{group_by="role"}/{env="testing"}/{wait="long"}'],
        ),
    ]


LEGACY_CASES = cases(
    '{owner="team-A"}',
    '{env="testing"}',
    '{env=~"^(?:produ.*)$",job=~"^(?:.*)$"}',
    '{owner=~"^(?:team-(B|C))$"}',
)
MATCHERS_CASES = cases(
    '{level!="critical",owner="team-A"}',
    '{baz!~".*quux",env="testing"}',
    '{env=~"produ.*",job=~".*"}',
    '{owner=~"team-(B|C)"}',
)
MIXED_CASES = cases(
    '{level!="critical",owner="team-A"}',
    '{baz!~".*quux",env="testing"}',
    '{env=~"produ.*",job=~".*"}',
    '{owner=~"^(?:team-(B|C))$"}',
)


def tree(text: str) -> Route:
    return build(RouteSpec.model_validate(load(text).data))


def alert(labels: dict[str, str]) -> Alert:
    return Alert("test", "", "", labels=labels)


@pytest.mark.parametrize(
    ("text", "labels", "expected", "keys"),
    [(LEGACY, *case) for case in LEGACY_CASES]
    + [(MATCHERS, *case) for case in MATCHERS_CASES]
    + [(MIXED, *case) for case in MIXED_CASES],
)
def test_route_match(
    text: str, labels: dict[str, str], expected: list[RouteOpts], keys: list[str]
) -> None:
    """TestRouteMatch, TestRouteMatchers and TestRouteMatchersAndMatch: 24 cases."""
    matched = tree(text).match(alert(labels))
    assert [r.opts for r in matched] == expected
    assert [r.key() for r in matched] == keys


def test_route_walk() -> None:
    """TestRouteWalk: every route, depth first, with its inherited receiver."""
    assert [r.opts.receiver for r in tree(LEGACY).walk()] == [
        "notify-def", "notify-A", "notify-testing", "notify-productionA", "notify-productionB",
        "notify-BC", "notify-def", "notify-testing", "notify-testing",
    ]  # fmt: skip


def test_inherit_parent_group_by_all() -> None:
    """TestInheritParentGroupByAll: `...` is inherited until a child sets its own group_by."""
    root = tree("""
routes:
- match: {env: parent}
  group_by: ['...']
  routes:
  - match: {env: child1}
  - match: {env: child2}
    group_by: [foo]
""")
    parent = root.routes[0]
    assert parent.opts.group_by_all and parent.routes[0].opts.group_by_all
    assert not parent.routes[1].opts.group_by_all


def test_route_id() -> None:
    """TestRouteID: ids are unique even where routes repeat each other's matchers."""
    root = tree("""
receiver: default
routes:
- {continue: true, matchers: [foo=bar], receiver: test1, routes: [{matchers: [bar=baz]}]}
- {continue: true, matchers: [foo=bar], receiver: test1, routes: [{matchers: [bar=baz]}]}
- {continue: true, matchers: [foo=bar], receiver: test2, routes: [{matchers: [bar=baz]}]}
- continue: true
  matchers: [bar=baz]
  receiver: test3
  routes: [{matchers: [baz=qux]}, {matchers: [qux=corge]}]
- {continue: true, matchers: ['qux=~"[a-zA-Z0-9]+"']}
- {continue: true, matchers: ['corge!~"[0-9]+"']}
""")
    assert sorted(r.id() for r in root.walk()) == sorted([
        "{}",
        '{}/{foo="bar"}/0', '{}/{foo="bar"}/0/{bar="baz"}/0',
        '{}/{foo="bar"}/1', '{}/{foo="bar"}/1/{bar="baz"}/0',
        '{}/{foo="bar"}/2', '{}/{foo="bar"}/2/{bar="baz"}/0',
        '{}/{bar="baz"}/3', '{}/{bar="baz"}/3/{baz="qux"}/0', '{}/{bar="baz"}/3/{qux="corge"}/1',
        '{}/{qux=~"[a-zA-Z0-9]+"}/4',
        '{}/{corge!~"[0-9]+"}/5',
    ])  # fmt: skip
