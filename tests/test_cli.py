"""The command line: replay, check, test and schema, as DESIGN.md §5 fixes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from correlator.cli import main

REPO = Path(__file__).parent.parent


def _events(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _event(ts: float, node: str, **kw: object) -> str:
    return json.dumps({"timestamp": ts, "node": node, "alertgroup": "Ping", **kw})


def test_replay_30_events_3_identifiers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """30 events over 3 identifiers give 3 rows with tallies that add up."""
    lines = [_event(1000 + i, f"h{i % 3}") for i in range(30)]
    events = _events(tmp_path / "e.jsonl", lines)
    assert main(["replay", str(events), "--rules", str(tmp_path), "--final"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["identifier"], r["tally"]) for r in rows] == [
        ("h0:Ping::", 10),
        ("h1:Ping::", 10),
        ("h2:Ping::", 10),
    ]


def test_replay_prints_changes_and_clears(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every change is one JSON line {at, kind, alert}; a resolution clears."""
    lines = [_event(10, "h1"), _event(20, "h1"), _event(30, "h1", type="resolution")]
    events = _events(tmp_path / "e.jsonl", lines)
    assert main(["replay", str(events), "--rules", str(tmp_path)]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(c["at"], c["kind"]) for c in out] == [
        (10, "alert.created"),
        (20, "alert.updated"),
        (30, "alert.cleared"),
    ]
    assert out[-1]["alert"]["status"] == "cleared" and out[-1]["alert"]["severity"] == 0


def test_replay_until_fires_pending_timers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--until +5m advances the clock after the last event so the deletion fires."""
    lines = [_event(10, "h1"), _event(20, "h1", type="resolution")]
    events = _events(tmp_path / "e.jsonl", lines)
    assert main(["replay", str(events), "--rules", str(tmp_path), "--until", "+5m"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[-1]["kind"] == "alert.deleted" and out[-1]["at"] == 140


def test_replay_reports_bad_lines_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad line is named by number on stderr; the other lines are still processed."""
    lines = [
        _event(10, "h1"),
        json.dumps({"node": "h2", "alertgroup": "Ping"}),  # no timestamp
        "{not json",
        _event(12, "h3", severity="banana"),
        _event(13, "h4"),
    ]
    events = _events(tmp_path / "e.jsonl", lines)
    assert main(["replay", str(events), "--rules", str(tmp_path), "--final"]) == 1
    captured = capsys.readouterr()
    assert [r["node"] for r in json.loads(captured.out)] == ["h1", "h4"]
    err = captured.err.splitlines()
    assert err[0] == f"{events}:2: missing 'timestamp' (epoch seconds or RFC 3339)"
    assert err[1].startswith(f"{events}:3: not JSON")
    assert (
        err[2]
        == f"{events}:4: dead-lettered (invalid): field 'severity': unknown severity 'banana'"
    )


def test_replay_reports_undecodable_and_out_of_range_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line that is not UTF-8, or whose timestamp is not a time, is reported; the rest goes on."""
    path = tmp_path / "e.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                _event(10, "h1").encode(),
                b'{"timestamp": 11, "node": "h\xff", "alertgroup": "Ping"}',
                _event("nan", "h2").encode(),  # type: ignore[arg-type]
                _event(1767225600000, "h3").encode(),
                _event(13, "h4").encode(),
            ]
        )
        + b"\n"
    )
    assert main(["replay", str(path), "--rules", str(tmp_path), "--final"]) == 1
    captured = capsys.readouterr()
    assert [r["node"] for r in json.loads(captured.out)] == ["h1", "h4"]
    err = captured.err.splitlines()
    assert err[0].startswith(f"{path}:2: not JSON") and "UTF-8" in err[0]
    assert err[1].startswith(f"{path}:3: not a timestamp")
    assert err[2].endswith("(epoch milliseconds? use seconds)")


def test_replay_rejects_bad_options_and_missing_files_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad `--until`/`--max-lateness` are usage errors (exit 2) before anything is replayed."""
    events = _events(tmp_path / "e.jsonl", [_event(10, "h1")])
    for option in (["--until", "banana"], ["--max-lateness", "banana"]):
        with pytest.raises(SystemExit) as exited:
            main(["replay", str(events), "--rules", str(tmp_path), *option])
        assert exited.value.code == 2
        captured = capsys.readouterr()
        assert captured.out == "" and "banana" in captured.err
    assert main(["replay", str(tmp_path / "nope.jsonl"), "--rules", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_replay_accepts_rfc3339(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Timestamps may be RFC 3339 strings."""
    events = _events(tmp_path / "e.jsonl", [_event("2026-01-01T00:00:00Z", "h1")])  # type: ignore[arg-type]
    assert main(["replay", str(events), "--rules", str(tmp_path), "--final"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["first_occurrence"] == 1767225600


def test_check_ok_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check: exit 0 with a one-line summary; exit 1 with file:line:col lines."""
    assert main(["check", str(REPO / "rules")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("ok: ")
    (tmp_path / "r.yaml").write_text("normalize:\n  - name: x\n    expire_after: [1]\n")
    assert main(["check", str(tmp_path)]) == 1
    assert capsys.readouterr().out.startswith(
        f"{tmp_path / 'r.yaml'}:3:19: normalize[0].expire_after"
    )


def test_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """schema prints a JSON Schema that knows every section."""
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"normalize", "correlate", "topology", "inhibit_rules"} <= set(schema["properties"])


def test_console_script_runs() -> None:
    """The installed `python -m correlator` entry point works end to end."""
    result = subprocess.run(
        [sys.executable, "-m", "correlator", "check", str(REPO / "rules")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "option",
    [
        ["--max-lateness", "30"],
        ["--max-lateness", "0"],
        ["--max-lateness", "2.5"],
        ["--until", "+30"],
        ["--until", "+0"],
    ],
)
def test_replay_flags_take_bare_seconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    """A bare number of seconds is a duration on the command line too (`+30` = 30 s after the last event)."""
    events = _events(tmp_path / "e.jsonl", [_event(10, "h1")])
    assert main(["replay", str(events), "--rules", str(tmp_path), "--final", *option]) == 0
    assert json.loads(capsys.readouterr().out)[0]["identifier"] == "h1:Ping::"


def test_until_counts_bare_seconds_after_the_last_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--until +130` fires the deletion 120 s after the clear at t=20, like `+130s`."""
    lines = [_event(10, "h1"), _event(20, "h1", type="resolution")]
    events = _events(tmp_path / "e.jsonl", lines)
    assert main(["replay", str(events), "--rules", str(tmp_path), "--until", "+140"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert out[-1]["kind"] == "alert.deleted" and out[-1]["at"] == 140


@pytest.mark.parametrize(
    "option", [["--max-lateness", "-5"], ["--max-lateness=-1m"], ["--until", "+-30"]]
)
def test_replay_refuses_negative_durations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    """A negative duration is a usage error (exit 2) that says it is negative."""
    events = _events(tmp_path / "e.jsonl", [_event(10, "h1")])
    with pytest.raises(SystemExit) as exited:
        main(["replay", str(events), "--rules", str(tmp_path), *option])
    assert exited.value.code == 2
    assert "cannot be negative" in capsys.readouterr().err


RAISING_RULES = """
correlate:
  - {name: burst, kind: threshold, match: 'alertgroup="Err"', count: 2, window: 1m}
  - name: late-job
    kind: pair
    first: 'alertgroup="JobStart"'
    second: 'alertgroup="JobEnd"'
    on: node
    within: 1m
  - {name: dead-man, kind: absence, match: 'alertgroup="Beat"', group_by: [node], for: 1m}
"""


@pytest.mark.parametrize(
    ("rule", "note"),
    [
        ("burst", "raised: 2 matching events within 1m"),
        ("late-job", "raised: no second event"),
        ("dead-man", "raised: no matching event for 1m"),
    ],
)
def test_a_raised_alert_is_created_with_its_raised_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rule: str, note: str
) -> None:
    """The `alert.created` record of a synthetic alert already carries the rule's "raised:" note."""
    (tmp_path / "rules.yaml").write_text(RAISING_RULES)
    lines = [
        _event(0, "a", alertgroup="Err"),
        _event(1, "a", alertgroup="Err"),
        _event(2, "b", alertgroup="JobStart"),
        _event(3, "c", alertgroup="Beat"),
    ]
    events = _events(tmp_path / "e.jsonl", lines)
    assert main(["replay", str(events), "--rules", str(tmp_path), "--until", "+5m"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    (created,) = [c for c in out if c["kind"] == "alert.created" and c["alert"]["agent"] == rule]
    journal = created["alert"]["journal"]
    assert [n["who"] for n in journal] == [rule] and journal[0]["text"].startswith(note)
