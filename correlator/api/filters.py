"""`GET /api/v1/alerts`: filter with the rule matchers, sort by a field, page."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from correlator.model import Alert
from correlator.ruleset.matchers import all_of, compile_matchers
from correlator.ruleset.paths import ALERT_FIELDS

SORTABLE = ALERT_FIELDS


def _key(name: str) -> Any:
    """Sort on a field that may be unset (owner, parent, expire_at): unset sorts first."""

    def key(row: Alert) -> tuple[bool, Any]:
        value = getattr(row, name)
        return (value is not None, value if value is not None else 0)

    return key


def select(
    rows: Iterable[Alert], filters: Sequence[str], sort: str, limit: int, offset: int
) -> tuple[list[Alert], int]:
    """The page of rows that match every filter, sorted; and how many matched in all."""
    wanted = all_of([m.test for m in compile_matchers(filters)])
    found = [row for row in rows if wanted(row)]
    name = sort.removeprefix("-")
    if name not in SORTABLE:
        raise ValueError(f"cannot sort by {name!r}: one of {', '.join(sorted(SORTABLE))}")
    found.sort(key=_key(name), reverse=sort.startswith("-"))
    return found[offset : offset + limit], len(found)
