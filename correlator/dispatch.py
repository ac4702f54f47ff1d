"""Who is told what: the engine's dispatch tables, built once per rule set.

Every change to a row comes back to the engine as a transition and goes to the
rules subscribed to it; every event goes to the event rules its fields may
concern. Most of the engine's time is that dispatch, so the tables are worked
out at load, not per event: who hears each transition and in what order, the
few rules a tally-only repeat or a change of `parent`/`incident` alone
concerns, and how a repeat of an open row finds its event rules from the row
(the repeat fast path) without building an occurrence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final

from correlator.correlate.base import Operator
from correlator.ruleset.index import RuleIndex
from correlator.ruleset.matchers import Predicate

# fields a repeat carries as its row has them: an index on these sees the same in both
_REPEAT_SHARES: Final = frozenset(
    ("identifier", "node", "alertgroup", "alertkey", "manager", "agent", "severity", "type",
     "summary")
)  # fmt: skip
# those of them a row holds as text, the index's own key (its lookups convert others)
_REPEAT_TEXTS: Final = _REPEAT_SHARES - {"severity"}
# and what else the occurrence of a repeat shares with its row (`fold_same` set them)
_ROW_SHARES: Final = _REPEAT_SHARES | {"last_occurrence", "tally"}
_TALLY = re.compile(r"\btally\s*(?:>=|<=|!=|==|=~|!~|=|>|<)")
_LINKS = re.compile(r"\b(?:parent|incident)\b")

EventRule = tuple[Operator, Predicate]


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The tables; the engine copies each into an attribute of its own (read per event)."""

    event_ops: RuleIndex[EventRule]
    by_transition: dict[str, tuple[Operator, ...]]
    # a tally-only repeat changes no field, except for rules whose conditions read tally
    tally_watchers: tuple[Operator, ...]
    # a change of `parent`/`incident` alone concerns only rules that may read them
    link_watchers: tuple[Operator, ...]
    # the repeat fast path: an occurrence is made only for event rules that are filed
    # under fields a repeat may not share with its row (False), or that the row's fields
    # fit (True); None: no event rule
    row_decides: bool | None
    # the usual correlate rules are all filed under one text field (alertgroup): a repeat
    # then finds its candidates with one probe of the row's value, no call
    row_field: attrgetter[Any] | None
    row_buckets: dict[str, tuple[EventRule, ...]]
    row_always: tuple[EventRule, ...]
    # rules a repeat may hand its row as the occurrence: by whether they read labels
    row_readers: dict[Operator, bool]


def build(operators: Sequence[Operator]) -> Dispatch:
    """The tables for `operators`, in rule order."""
    event_ops: RuleIndex[EventRule] = RuleIndex(
        [((op, op.event_filter), op.event_keys) for op in operators if op.event_filter is not None]
    )
    by_transition: dict[str, list[Operator]] = {}
    for op in operators:
        for transition in op.transitions:
            by_transition.setdefault(transition, []).append(op)
    # a reopen is a new episode: rules that undo the last one's changes go first, so
    # no rule sees the reopened row with values from before (stable: rule order otherwise)
    by_transition.get("reopened", []).sort(key=lambda op: not op.resets_on_reopen)
    # rules that may clear the row they are told about go last: the others see
    # the transition before the clear, never after it
    for ops in by_transition.values():
        ops.sort(key=lambda op: op.clears_on_transition)
    row_decides = event_ops.names <= _REPEAT_SHARES if len(event_ops) else None
    one = event_ops.by_one_field() if row_decides else None
    if one is None or one[0] not in _REPEAT_TEXTS:
        one = None
    return Dispatch(
        event_ops=event_ops,
        by_transition={t: tuple(ops) for t, ops in by_transition.items()},
        tally_watchers=tuple(
            op for op in operators if "updated" in op.transitions and _reads_tally(op.spec)
        ),
        link_watchers=tuple(
            op for op in by_transition.get("modified", ()) if _may_read_links(op.spec)
        ),
        row_decides=row_decides,
        row_field=attrgetter(one[0]) if one is not None else None,
        row_buckets=one[1] if one is not None else {},
        row_always=one[2] if one is not None else (),
        row_readers={
            op: "labels" in reads
            for op in operators
            if (reads := op.event_reads) is not None and reads - {"labels"} <= _ROW_SHARES
        },
    )


def _reads_tally(spec: Any) -> bool:
    """Whether a rule's matchers or CEL condition compare `tally`."""
    dump = getattr(spec, "model_dump_json", None)
    return dump is not None and _TALLY.search(dump()) is not None


def _may_read_links(spec: Any) -> bool:
    """Whether a rule may read `parent` or `incident` (any mention counts: conservative)."""
    dump = getattr(spec, "model_dump_json", None)
    return dump is None or _LINKS.search(dump()) is not None
