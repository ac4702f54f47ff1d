"""A rule set together with the exact texts it was loaded from, and their digest.

The daemon journals which version was in force from which point on, so a
restart replays every input under the rules that processed it, then reloads
the current ones (reload semantics: unchanged rules keep their state).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from correlator.ruleset.loader import RuleSet, load_rule_texts, rule_texts
from correlator.ruleset.tables import SQL_PREFIX


@dataclass(frozen=True, slots=True)
class RuleVersion:
    ruleset: RuleSet
    blob: bytes  # the texts as JSON `{path: text}`, keys sorted
    digest: str

    @classmethod
    def read(cls, root: str | Path, tables: Mapping[str, str] | None = None) -> RuleVersion:
        """Read and load the rule files under `root`, with the SQL tables' rows
        (`{"sql:<name>": text}`, see `sql_rows_text`); raise RuleSetError."""
        texts = rule_texts(root) | dict(tables or {})
        return cls.of(orjson.dumps(texts, option=orjson.OPT_SORT_KEYS))

    def with_tables(self, tables: Mapping[str, str]) -> RuleVersion:
        """These rule texts with other SQL tables' rows (as `read` takes them)."""
        texts = {k: v for k, v in orjson.loads(self.blob).items() if not k.startswith(SQL_PREFIX)}
        return self.of(orjson.dumps(texts | dict(tables), option=orjson.OPT_SORT_KEYS))

    @classmethod
    def of(cls, blob: bytes) -> RuleVersion:
        """Load the texts a journal stored; raise RuleSetError."""
        ruleset = load_rule_texts(orjson.loads(blob))
        return cls(ruleset, blob, hashlib.sha256(blob).hexdigest())
