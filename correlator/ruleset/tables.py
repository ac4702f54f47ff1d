"""Lookup tables for policies (`tables:`): CMDB extracts and the like, beside the rules.

A table is rows keyed by one column: a CSV file with a header row, a YAML
file (a list of maps, or a map from key to map), or `rows:` written inline.
Files live in a `tables/` folder under the rules directory (never read as
rule files) and are part of the rule set: a reload reads them again, and the
journal keeps the version each input was processed under, tables included.
A key that is not in the table gets the `default:` row, if there is one.

A `sql:` table is a query on the state database, read whole by the daemon
(every `ttl`) and handed to the load as one more text of the rule set, under
`sql:<name>`: so the journal holds the rows each input was enriched with, a
replay gives the same answer, and the engine never waits on a database.
Where there is no daemon (`check`, `test`, `replay`), the table is empty
until rows are given, and lookups take the `default:` row.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import PurePath
from typing import Any

import orjson
from pydantic import Field, model_validator

from correlator.correlate.inhibit import LabelText
from correlator.ruleset.schema import Duration, Strict
from correlator.ruleset.yamlpos import YamlError, load

TABLE_FOLDER = "tables"
TABLE_SUFFIXES = (".csv", ".yaml", ".yml")
SQL_PREFIX = "sql:"  # a SQL table's rows among the rule set's texts: `sql:<name>`
_BOUND_PARAMETER = re.compile(r"(?<![:\w]):[A-Za-z_]\w*|%s|\?")


class TableSpec(Strict):
    file: str | None = None  # relative to the rule file, under a `tables/` folder
    rows: list[dict[str, LabelText]] | None = None
    sql: str | None = None  # a query on the state database, read whole every `ttl`
    ttl: Duration | None = Field(default=None, gt=0)
    key: str
    default: dict[str, LabelText] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TableSpec:
        if sum(source is not None for source in (self.file, self.rows, self.sql)) != 1:
            raise ValueError("a table needs exactly one of file, rows and sql")
        if self.ttl is not None and self.sql is None:
            raise ValueError("ttl is for sql tables (files are read again on reload)")
        if self.sql is not None and _BOUND_PARAMETER.search(self.sql):
            raise ValueError(
                "a sql table is read whole, never per key (the engine does not wait on a "
                "database): select the key column and the columns to merge, with no "
                "parameters such as :key"
            )
        return self

    @property
    def refresh(self) -> float:
        """How often a SQL table is read again (seconds; default 5 minutes)."""
        return self.ttl if self.ttl is not None else 300.0


class Table:
    """Rows by key, each a map of column → text (the key column left out)."""

    def __init__(self, key: str, rows: list[dict[str, Any]], default: dict[str, str] | None):
        self.key = key
        self.rows: dict[str, dict[str, str]] = {}
        for row in rows:
            if key not in row:
                raise ValueError(f"a row has no {key!r} column: {row}")
            self.rows[str(row[key])] = {str(k): _text(v) for k, v in row.items() if k != key}
        self.default = default

    def get(self, key: str) -> dict[str, str] | None:
        found = self.rows.get(key)
        return found if found is not None else self.default


def is_table_file(path: str) -> bool:
    parts = PurePath(path).parts
    return TABLE_FOLDER in parts[:-1] and path.endswith(TABLE_SUFFIXES)


def is_table_data(name: str) -> bool:
    """A rule-set text that is table rows, not a rule file: a table file or SQL rows."""
    return name.startswith(SQL_PREFIX) or is_table_file(name)


def sql_rows_text(rows: list[dict[str, Any]]) -> str:
    """A SQL table's rows as the rule-set text `sql:<name>` (stable: same rows, same text)."""
    return orjson.dumps([{str(k): _text(v) for k, v in row.items()} for row in rows]).decode()


def table_path(rule_file: str, file: str) -> str:
    return str(PurePath(rule_file).parent / file)


def build_table(name: str, spec: TableSpec, data: dict[str, str], rule_file: str) -> Table:
    """The table, from its inline rows, its file's text or its SQL rows; ValueError."""
    if spec.rows is not None:
        return Table(spec.key, [dict(r) for r in spec.rows], spec.default)
    if spec.sql is not None:
        text = data.get(SQL_PREFIX + name)
        return Table(spec.key, orjson.loads(text) if text else [], spec.default)
    assert spec.file is not None
    path = table_path(rule_file, spec.file)
    if path not in data:
        raise ValueError(f"no table file {spec.file} (tables live in a tables/ folder)")
    text = data[path]
    if path.endswith(".csv"):
        return Table(spec.key, list(csv.DictReader(io.StringIO(text))), spec.default)
    try:
        loaded = load(text).data  # bounded like rule files: no alias bombs
    except YamlError as exc:
        raise ValueError(f"{spec.file}:{exc.line}:{exc.col}: {exc.message}") from None
    if isinstance(loaded, dict):
        rows = [{spec.key: k, **(v or {})} for k, v in loaded.items()]
    elif isinstance(loaded, list) and all(isinstance(r, dict) for r in loaded):
        rows = loaded
    else:
        raise ValueError(f"{spec.file}: a YAML table is a list of maps or a map of maps")
    return Table(spec.key, rows, spec.default)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
