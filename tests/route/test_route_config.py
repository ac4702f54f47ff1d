"""`route:` in rule files: checked against receivers and time intervals; `route-test`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from correlator.cli import main
from correlator.errors import RuleSetError
from correlator.ruleset.loader import load_rules

ROUTING = """
route:
  receiver: noc
  group_by: [alertname, site]
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['site=~"ams|fra"']
      receiver: eu-team
      mute_time_intervals: [weekends]
receivers:
  - {name: noc}
  - {name: pager}
  - {name: eu-team}
time_intervals:
  - name: weekends
    time_intervals: [{weekdays: [saturday, sunday]}]
"""


def _rules(tmp_path: Path, text: str, name: str = "routing.yaml") -> Path:
    (tmp_path / name).write_text(textwrap.dedent(text))
    return tmp_path


def _errors(tmp_path: Path) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_rules(tmp_path)
    return [str(error) for error in caught.value.errors]


def test_route_test_prints_the_receivers_in_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = str(_rules(tmp_path, ROUTING))
    assert main(["route-test", rules, "severity=critical", "site=ams"]) == 0
    assert capsys.readouterr().out.splitlines() == ["pager", "eu-team"]
    assert main(["route-test", rules, "site=nyc"]) == 0
    assert capsys.readouterr().out.splitlines() == ["noc"]
    assert main(["route-test", rules, "oops"]) == 2


def test_route_test_needs_a_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["route-test", str(_rules(tmp_path, "{}\n")), "a=b"]) == 2
    assert "no route" in capsys.readouterr().err


def test_undefined_receivers_and_intervals_are_errors_at_their_line(tmp_path: Path) -> None:
    _rules(tmp_path, ROUTING.replace("receiver: eu-team", "receiver: eu").replace(
        "[weekends]", "[weekend]"))  # fmt: skip
    errors = _errors(tmp_path)
    assert any(e.endswith("route: undefined receiver 'eu'") and ":10:" in e for e in errors)
    assert any("undefined time interval 'weekend'" in e and ":11:" in e for e in errors)


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ("receiver: noc\n  matchers: [a=b]", "the root route must not have any matchers"),
        ("receiver: noc\n  continue: true", "the root route cannot have continue set"),
        ("group_by: [a]", "the root route must have a receiver"),
        ("receiver: noc\n  group_by: ['...', a]", "cannot have wildcard group_by"),
    ],
)
def test_what_alertmanager_refuses_in_the_root(tmp_path: Path, root: str, message: str) -> None:
    _rules(tmp_path, f"route:\n  {root}\nreceivers: [{{name: noc}}]\n")
    assert any(message in e for e in _errors(tmp_path)), _errors(tmp_path)


def test_one_routing_tree_per_rule_set(tmp_path: Path) -> None:
    _rules(tmp_path, ROUTING)
    _rules(tmp_path, "route: {receiver: noc}\n", "second.yaml")
    (error,) = _errors(tmp_path)
    assert error.startswith(f"{tmp_path}/second.yaml:1:8: route: a second routing tree")
    assert error.endswith("routing.yaml:3:3)")


def test_a_bad_matcher_in_a_route_is_located(tmp_path: Path) -> None:
    _rules(tmp_path, ROUTING.replace("""['site=~"ams|fra"']""", """['site=~"(ams"']"""))
    (error,) = _errors(tmp_path)
    assert ":9:18: route.routes[1].matchers[0]: bad regex" in error
