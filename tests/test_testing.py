"""`correlator test`: pass/fail, readable diffs, exit codes 0/1/2, repeats and late events."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from correlator.cli import main
from correlator.testing import run_test_file

RULES = """
normalize:
  - name: ping
    match: ['raw.check="ping"']
    fields: {node: "{{ raw.host }}", alertgroup: NodeUnreachable, severity: major}
    labels: {site: "{{ raw.site }}"}
"""


def _write(tmp_path: Path, test: str) -> Path:
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(RULES))
    path = tmp_path / "ping_test.yaml"
    path.write_text(textwrap.dedent(test))
    return path


PASSING = """
start: 2026-01-01T00:00:00Z
tests:
  - name: repeats fold into one row
    events:
      - at: 10s
        repeat: {every: 20s, times: 5}
        event: {check: ping, host: n1, site: ams1}
    expect:
      - at: 1m
        alerts: [{identifier: "n1:NodeUnreachable::", tally: 3, labels.site: ams1, severity: 4}]
      - at: 2m
        alerts: [{identifier: "n1:NodeUnreachable::", tally: 5, severity: major, owner: null}]
        absent: ["n2:NodeUnreachable::"]
"""


def test_passing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Default rule_files is the test file's directory; a pass prints PASS and the count."""
    path = _write(tmp_path, PASSING)
    assert main(["test", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"PASS {path}: repeats fold into one row", "1 passed, 0 failed"]


def test_failure_prints_a_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A failing expectation shows the wanted and actual value of each differing field."""
    path = _write(tmp_path, PASSING.replace("tally: 5", "tally: 6"))
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "at 2m:" in out
    assert "- tally: 6" in out and "+ tally: 5" in out
    assert out.splitlines()[-1] == "0 passed, 1 failed"


def test_empty_list_means_none(tmp_path: Path) -> None:
    """`alerts: []` requires an empty table; `absent` fails when the row exists."""
    path = _write(
        tmp_path,
        """
        tests:
          - name: t
            events: [{at: 0s, event: {check: ping, host: n1}}]
            expect:
              - {at: 1s, alerts: []}
              - {at: 2s, absent: ["n1:NodeUnreachable::"]}
        """,
    )
    (result,) = run_test_file(path)
    assert len(result.failures) == 2
    assert "expected none, got 1" in result.failures[0]
    assert "has a row" in result.failures[1]


def test_each_entry_finds_its_own_row_whatever_the_order(tmp_path: Path) -> None:
    """Entries are matched to distinct rows as a whole: the first entry fits both rows, the
    second only one, and the test passes (a first-fit match would have failed it)."""
    path = _write(
        tmp_path,
        """
        tests:
          - name: t
            events:
              - {at: 0s, event: {check: ping, host: n1, site: ams1}}
              - {at: 1s, event: {check: ping, host: n2, site: fra1}}
            expect:
              - at: 2s
                alerts: [{alertgroup: NodeUnreachable}, {labels.site: ams1}]
              - at: 3s
                alerts: [{labels.site: ams1}, {labels.site: ams1}]
        """,
    )
    (result,) = run_test_file(path)
    assert len(result.failures) == 1 and "alerts[1]" in result.failures[0]


def test_late_by_models_out_of_order_arrival(tmp_path: Path) -> None:
    """`late_by` sends an event whose timestamp is older than its arrival."""
    path = _write(
        tmp_path,
        """
        tests:
          - name: t
            events:
              - {at: 100s, event: {check: ping, host: n1}}
              - {at: 110s, late_by: 30s, event: {check: ping, host: n1}}
            expect:
              - {at: 2m, alerts: [{identifier: "n1:NodeUnreachable::", tally: 2, last_occurrence: 100}]}
        """,
    )
    (result,) = run_test_file(path)
    assert result.passed, result.failures


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "tests:\n  - name: t\n    expect: [{at: soon}]\n",
            ":3:19: tests[0].expect[0].at: not a duration",
        ),
        ("tests: [\n", ":2:1: YAML syntax error"),
        ("rule_files: [nothing*.yaml]\ntests: []\n", ":1:14: rule_files[0]: no file matches"),
        (
            "tests:\n  - name: t\n    expect: [{at: 2s}, {at: 1s}]\n",
            "expectations must be in time order",
        ),
        (  # a billion laughs in a test file is bounded like in a rule file
            "x: &a [l, l, l, l, l, l, l, l, l, l]\n"
            + "".join(
                f"x{i}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
            )
            + "tests: []\n",
            ":5:37: aliases repeat more than 100000 values (at *d)",
        ),
        ("tests: &t [{name: t, events: *t}]\n", ":1:30: alias *t is inside its own anchor"),
        (  # the reported reproduction: expanded eagerly, it died with a traceback
            "tests:\n  - name: t\n    events:\n      - at: 0s\n"
            "        repeat: {every: 1s, times: 30000000}\n        event: {check: ping}\n",
            ":5:36: tests[0].events[0].repeat.times: more than 100000 events in one test",
        ),
        (  # the bound is per test, across its events
            "tests:\n  - name: t\n    events:\n"
            "      - {at: 0s, repeat: {every: 0s, times: 60000}, event: {check: ping}}\n"
            "      - {at: 0s, repeat: {every: 0s, times: 60000}, event: {check: ping}}\n",
            ":5:45: tests[0].events[1].repeat.times: more than 100000 events in one test",
        ),
        (
            "tests:\n  - name: t\n    events: [{at: 1000000000000, event: {check: ping}}]\n",
            ":3:19: tests[0].events[0].at: events must happen within 366d of the start",
        ),
        (
            "tests:\n  - name: t\n    events:\n"
            "      - {at: 0s, repeat: {every: 1d, times: 400}, event: {check: ping}}\n",
            ":4:26: tests[0].events[0].repeat: events must happen within 366d of the start",
        ),
        (
            "tests:\n  - name: t\n    expect: [{at: 100000d}]\n",
            ":3:19: tests[0].expect[0].at: at most 366d after the start",
        ),
        (  # the reported typo: read as a label, it passed although the row has a parent
            "tests:\n  - name: t\n    expect:\n      - at: 1s\n"
            "        alerts: [{identifier: x, parnet: null}]\n",
            ":5:34: tests[0].expect[0].alerts[0].parnet: 'parnet' is not an alert field",
        ),
        (
            "tests:\n  - name: t\n    expect: [{at: 1s, alerts: [{labels.: x}]}]\n",
            ":3:33: tests[0].expect[0].alerts[0].labels.: 'labels.' is not an alert field",
        ),
        (
            "tests:\n  - name: t\n    expect: [{at: 1s, incidents: [{id: i, titel: x}]}]\n",
            ":3:43: tests[0].expect[0].incidents[0].titel: 'titel' is not an incident key",
        ),
        (
            "tests:\n  - name: t\n    expect: [{at: 1s, notifications: [{reciever: p}]}]\n",
            ":3:40: tests[0].expect[0].notifications[0].reciever: 'reciever' is not an alert field or receiver",
        ),
    ],
)
def test_invalid_test_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, error: str
) -> None:
    """An invalid test file is reported as file:line:col and exits 2."""
    path = _write(tmp_path, text)
    assert main(["test", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(str(path)) and error in err, err


def test_broken_rules_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rules that do not load make the test file unusable: exit 2 with their errors."""
    path = _write(tmp_path, PASSING)
    (tmp_path / "rules.yaml").write_text("normalize: 3\n")
    assert main(["test", str(path)]) == 2
    assert "rules.yaml:1:12: normalize" in capsys.readouterr().err


def test_a_test_file_that_is_not_utf8_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable test file is invalid (exit 2) with the byte's position, not a crash."""
    path = _write(tmp_path, PASSING)
    path.write_bytes(path.read_bytes().replace(b"repeats", b"r\xe9peats"))
    assert main(["test", str(path)]) == 2
    assert capsys.readouterr().err == f"{path}:4:12: not UTF-8: byte 0xe9\n"


def test_a_test_file_gives_the_rows_of_sql_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rule tests of a policy that looks up a SQL table: the rows come from the test file
    (the daemon reads them from its database); a name that is no sql table is an error."""
    (tmp_path / "cmdb.yaml").write_text(
        textwrap.dedent("""
        tables:
          cmdb: {sql: "select host, team from cmdb", key: host, default: {team: noc}}
        policies:
          - {name: enrich, on: [create], actions: [{lookup: {table: cmdb, key: "{{ node }}"}}]}
        """)
    )
    test = """
    tables:
      cmdb: [{host: n1, team: dba}]
    tests:
      - name: enriched from the rows
        events: [{at: 1s, event: {check: ping, host: n1, site: ams1}},
                 {at: 1s, event: {check: ping, host: n2, site: ams1}}]
        expect:
          - at: 2s
            alerts: [{identifier: "n1:NodeUnreachable::", labels.team: dba},
                     {identifier: "n2:NodeUnreachable::", labels.team: noc}]
    """
    path = _write(tmp_path, test)
    assert main(["test", str(path)]) == 0, capsys.readouterr()
    path.write_text(textwrap.dedent(test).replace("  cmdb: [", "  cmbd: ["))
    assert main(["test", str(path)]) == 2
    assert f"{path}:3:3: tables: 'cmbd' is not a sql table" in capsys.readouterr().err
