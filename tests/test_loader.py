"""Rule loading: every broken file is reported at the file, line and column of its node."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.errors import RuleSetError
from correlator.ruleset.loader import load_rules, rule_files
from correlator.ruleset.yamlpos import MAX_BYTES

BAD = Path(__file__).parent / "bad_rules"
CASES = sorted(p.stem for p in BAD.glob("*.yaml"))


@pytest.mark.parametrize("case", CASES)
def test_bad_rule_file_reports_position(case: str) -> None:
    """Each bad file is paired with the error text it must produce (prefix match)."""
    expected = (BAD / f"{case}.expected").read_text().strip()
    with pytest.raises(RuleSetError) as info:
        load_rules(BAD / f"{case}.yaml")
    errors = [str(e).replace(f"{BAD}/", "") for e in info.value.errors]
    assert len(errors) == 1, errors
    if "KINDS" in expected:
        expected = expected.split("KINDS")[0]
    assert errors[0].startswith(expected), errors[0]


def test_names_are_unique_across_files(tmp_path: Path) -> None:
    """A second rule with the same name, in another file, is an error pointing at both."""
    (tmp_path / "a.yaml").write_text("normalize:\n  - name: same\n")
    sub = tmp_path / "team"
    sub.mkdir()
    (sub / "b.yaml").write_text("normalize:\n  - name: other\n  - name: same\n")
    with pytest.raises(RuleSetError) as info:
        load_rules(tmp_path)
    (error,) = info.value.errors
    assert (error.file, error.line, error.col) == (str(sub / "b.yaml"), 3, 11)
    assert f"duplicate rule name 'same' (first at {tmp_path / 'a.yaml'}:2:11)" in error.message


def test_all_errors_of_all_files_are_reported(tmp_path: Path) -> None:
    """One run lists every problem, in every file."""
    (tmp_path / "a.yaml").write_text("normalize:\n  - name: a\n    discard: 3\n")
    (tmp_path / "b.yaml").write_text("correlate: [\n")
    with pytest.raises(RuleSetError) as info:
        load_rules(tmp_path)
    assert [Path(e.file).name for e in info.value.errors] == ["a.yaml", "b.yaml"]


def test_rule_files_skip_tests_and_hidden(tmp_path: Path) -> None:
    """Test files (`*_test.yaml`, `tests/`) and hidden folders are not rule files."""
    for name in ("a.yaml", "x/b.yml", "x/c_test.yaml", "tests/d.yaml", ".git/e.yaml", "f.txt"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert [p.relative_to(tmp_path).as_posix() for p in rule_files(tmp_path)] == [
        "a.yaml",
        "x/b.yml",
    ]


def test_empty_files_and_yaml12_booleans(tmp_path: Path) -> None:
    """An empty file is an empty rule set; `on:` is a key, not YAML 1.1's true."""
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "c.yaml").write_text(
        "correlate:\n  - name: c\n    kind: clear\n    problem: ['a=\"1\"']\n"
        "    resolution: ['a=\"2\"']\n    on: [node]\n"
    )
    rules = load_rules(tmp_path)
    assert rules.summary() == "2 files, 0 normalize rules, 1 correlate rules, 0 topology nodes"


def test_missing_directory(tmp_path: Path) -> None:
    """A rules path that does not exist is an error, not an empty rule set."""
    with pytest.raises(RuleSetError, match="no such rules file or directory"):
        load_rules(tmp_path / "nope")


def test_a_byte_that_is_not_utf8_is_located(tmp_path: Path) -> None:
    """The error names the line and column of the byte, like any other rule file error."""
    (tmp_path / "r.yaml").write_bytes(b"correlate:\n  - name: caf\xe9\n")
    with pytest.raises(RuleSetError) as err:
        load_rules(tmp_path)
    assert str(err.value) == f"{tmp_path / 'r.yaml'}:2:14: not UTF-8: byte 0xe9"


def test_a_merged_key_may_be_overridden(tmp_path: Path) -> None:
    """`<<: *base` then `name: b` overrides the merged name; writing a key twice is an error."""
    (tmp_path / "r.yaml").write_text(
        "correlate:\n"
        "  - &base\n    name: a\n    kind: flapping\n    match: ['alertgroup=\"L\"']\n"
        "  - <<: *base\n    name: b\n"
    )
    assert [r.name for r in load_rules(tmp_path).build_operators()] == ["a", "b"]
    (tmp_path / "r.yaml").write_text("correlate:\n  - name: a\n    name: b\n    kind: flapping\n")
    with pytest.raises(RuleSetError, match=r"r\.yaml:3:5: duplicate key 'name'"):
        load_rules(tmp_path)


def test_merge_lists_keep_yaml_precedence(tmp_path: Path) -> None:
    """In `<<: [*a, *b]` the earlier mapping wins, and a key written here wins over both."""
    (tmp_path / "r.yaml").write_text(
        "x-a: &a {kind: flapping, changes: 3, match: ['alertgroup=\"A\"']}\n"
        "x-b: &b {kind: threshold, changes: 9, window: 1m}\n"
        "correlate:\n  - <<: [*a, *b]\n    name: merged\n    changes: 4\n"
    )
    with pytest.raises(RuleSetError) as err:  # x-a/x-b are not sections: shows the merge ran
        load_rules(tmp_path)
    assert "unknown key 'x-a'" in str(err.value)
    (tmp_path / "r.yaml").write_text(
        "correlate:\n  - &a {name: a, kind: flapping, changes: 3, match: ['alertgroup=\"A\"']}\n"
        "  - {<<: [*a, {kind: threshold, changes: 9}], name: merged, changes: 4}\n"
    )
    ops = load_rules(tmp_path).build_operators()
    assert [(op.name, op.kind) for op in ops] == [("a", "flapping"), ("merged", "flapping")]


def test_a_file_over_the_size_bound_is_refused_before_reading(tmp_path: Path) -> None:
    """A rule file over 16 MiB is an error at 1:1, not a long parse or a MemoryError."""
    with (tmp_path / "huge.yaml").open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(RuleSetError, match=r"huge\.yaml:1:1: file too large"):
        load_rules(tmp_path)
