"""`correlator schema` declares what rule files may hold: editors accept what `check` accepts."""

from __future__ import annotations

import datetime
import io
import json
import textwrap
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonschema.exceptions import best_match

from correlator.cli import main
from correlator.ruleset.loader import TEST_FILE_SUFFIXES, load_rules
from correlator.ruleset.yamlpos import load, read_utf8

REPO = Path(__file__).parent.parent
SHIPPED = sorted(
    p for p in (REPO / "rules").rglob("*.yaml") if not p.name.endswith(TEST_FILE_SUFFIXES)
)
BAD = Path(__file__).parent / "bad_rules"
# Bad files whose fault is one of shape or type; the others (a bad regex, CEL or
# template, a duplicate key, a YAML syntax error) only `check` can see.
SCHEMA_CAN_TELL = [
    "bad_duration",
    "bad_field",
    "missing_key",
    "negative_duration",
    "unknown_key",
    "unknown_kind",
    "wrong_type",
    "yaml11_boolean",
]


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    """The schema exactly as `correlator schema` prints it."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["schema"]) == 0
    schema = json.loads(out.getvalue())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _as_editor_sees(data: Any) -> Any:
    """YAML 1.2 (what editors speak) has no timestamps: `2026-03-10T22:00:00Z` is a string."""
    if isinstance(data, dict):
        return {k: _as_editor_sees(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_as_editor_sees(v) for v in data]
    if isinstance(data, datetime.date):
        return data.isoformat()
    return data


def _problems(validator: jsonschema.Draft202012Validator, path: Path) -> list[str]:
    data = _as_editor_sees(load(read_utf8(path)).data)
    errors = list(validator.iter_errors(data))
    return [f"{list(e.absolute_path)}: {best_match([e]).message}" for e in errors]


def test_the_schema_is_valid_json_schema(validator: jsonschema.Draft202012Validator) -> None:
    """The printed schema is itself a valid draft 2020-12 schema."""
    assert validator.schema["$schema"].endswith("2020-12/schema")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_rule_file_validates(
    validator: jsonschema.Draft202012Validator, path: Path
) -> None:
    """Each rule file under rules/ passes `check` and the published schema alike."""
    assert _problems(validator, path) == []


ACCEPTED = {
    "durations as numbers, text numbers and units": """
        normalize:
          - {name: a, expire_after: 30}
          - {name: b, expire_after: 0.5}
          - {name: c, expire_after: "30"}
          - {name: d, expire_after: 1h30m}
        correlate:
          - {name: t, kind: threshold, match: 'alertgroup="X"', count: 2, window: 0.5}
        """,
    "one matcher or field as a string, templates as numbers and booleans": """
        normalize:
          - name: n
            match: 'raw.a="b"'
            identifier: node
            fields: {node: x, alertgroup: y, severity: 5}
            labels: {n: 3, up: true, ratio: 0.5}
            continue: true
            discard: false
        correlate:
          - name: p
            kind: pair
            first: 'alertgroup="Start"'
            second: ['alertgroup="End"']
            on: node
            within: 1h
            alert: {severity: 4, summary: 42}
        """,
    "maintenance: one window as a map, epoch and YAML timestamps": """
        correlate:
          - name: m1
            kind: maintenance
            schedule: {start: 1767225600, end: 1767229200}
          - name: m2
            kind: maintenance
            schedule:
              - {start: 2026-03-10T22:00:00Z, duration: 4h}
              - {start: "2026-03-10 22:00", end: "2026-03-11 02:00", timezone: Europe/Zurich}
        """,
    "inhibit and absence values written as numbers": """
        inhibit_rules:
          - source_match: {code: 500, critical: true}
            target_match_re: {code: 5}
            target_matchers: 'alertgroup="Y"'
            equal: [node]
        correlate:
          - name: hb
            kind: absence
            match: 'alertgroup="Heartbeat"'
            group_by: [node]
            for: 120
            expect: [{node: 10}]
        """,
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_what_check_accepts_the_schema_accepts(
    validator: jsonschema.Draft202012Validator, tmp_path: Path, case: str
) -> None:
    """Every coerced spelling (durations, one-or-many, scalar templates, timestamps) is declared."""
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(ACCEPTED[case]))
    load_rules(path)  # `check` accepts it
    assert _problems(validator, path) == []


@pytest.mark.parametrize("case", SCHEMA_CAN_TELL)
def test_known_bad_files_fail_the_schema(
    validator: jsonschema.Draft202012Validator, case: str
) -> None:
    """A bad file whose fault is of shape or type is flagged by the schema too."""
    assert _problems(validator, BAD / f"{case}.yaml") != []
