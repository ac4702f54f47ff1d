"""Parent links: every write of `alert.parent` goes through here, so no kind can bypass the checks.

Threshold, incident and topology rules all set `parent`; each asks the engine,
which records who set it (a `ParentLink` per row) and keeps two promises,
whatever rules combine:

- **The links form a forest.** A link that would close a loop of parents is
  not written. When a topology or threshold link would close one through an
  incident's root-cause link, the structural link wins: the incident link on
  the loop is unset (journal note). The dependency graph and the storm a
  group alert stands for say more than "the earliest member of an incident";
  so a group alert never ends as the child of one of its own members. Any
  other loop is refused and counted as `parent_cycle` for the rule.
- **Only an incident's link may point at a row that is not open** (an
  incident's root cause may clear while the incident is open). Another kind's
  link is refused when its parent is not open, is unset when its parent
  clears or is deleted (after the rules had their say on that change:
  topology moves its symptoms to the next root first), and is dropped when
  its row reopens under a parent that is no longer open. A cleared row keeps
  its parent as the record of why nobody was told.

The state is one link per row with a parent plus the reverse index (parent →
children) that makes "its parent cleared" a lookup, never a scan; both are
cleaned when a row is deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from correlator.correlate.base import ParentLink
from correlator.model import CLEARED, Alert
from correlator.table.table import AlertTable

INCIDENT: Final = "incident"  # the kind whose links may point at a cleared root cause
MAX_DEPTH: Final = 64  # chains are short; the bound keeps a corrupt one finite

Modify = Callable[[Alert, float, str, str], None]
Count = Callable[[str, str], None]


class ParentLinks:
    """The engine's record of who set each row's parent, and the one path that writes it."""

    def __init__(self, table: AlertTable, modify: Modify, count: Count) -> None:
        self._table = table
        self._modify = modify  # publish the change with a journal note (links only)
        self._count = count
        self.links: dict[str, ParentLink] = {}  # row identifier → who set its parent
        self._children: dict[str, set[str]] = {}  # parent identifier → rows linked to it

    def state(self) -> dict[str, object]:
        """The links and their reverse index, for snapshots."""
        return {"links": self.links, "children": self._children}

    def restore(self, state: dict[str, Any]) -> None:
        self.links = state["links"]
        self._children = state["children"]

    def get(self, alert: Alert) -> ParentLink | None:
        return self.links.get(alert.identifier)

    def set(self, alert: Alert, link: ParentLink | None, now: float, who: str, why: str) -> bool:
        """Write `link` (None: unset) on the alert; False when refused. `why` is the note."""
        if link is None:
            if alert.parent is not None:
                self._unlink(alert.identifier)
                alert.parent = None
                self._modify(alert, now, who, why)
            return True
        if link.parent == alert.identifier or not self._may_point_at(link):
            return False
        if link.parent == alert.parent:
            self._link(alert.identifier, link)  # the same parent, now on this rule's account
            return True
        if not self._no_loop(alert, link, now, who):
            self._count("parent_cycle", link.rule)
            return False
        self._link(alert.identifier, link)
        alert.parent = link.parent
        self._modify(alert, now, who, why)
        return True

    def _may_point_at(self, link: ParentLink) -> bool:
        if link.kind == INCIDENT:
            return True
        parent = self._table.get(link.parent)
        return parent is not None and parent.status != CLEARED

    def _no_loop(self, alert: Alert, link: ParentLink, now: float, who: str) -> bool:
        """Whether `link` leaves the parents a forest, once a yielding incident link is unset."""
        yielding: Alert | None = None  # the first row on the loop whose link is an incident's
        current: str | None = link.parent
        for _ in range(MAX_DEPTH):
            if current is None:
                return True
            if current == alert.identifier:
                break
            row = self._table.get(current)
            if row is None:
                return True
            up = self.links.get(current)
            if yielding is None and up is not None and up.kind == INCIDENT:
                yielding = row
            current = row.parent
        if link.kind == INCIDENT or yielding is None:
            return False
        lost = yielding.parent
        why = f"parent {lost} unset: {who} makes {alert.identifier} a child of {link.parent}"
        self.set(yielding, None, now, who, why)
        return True

    def _link(self, ident: str, link: ParentLink) -> None:
        old = self.links.get(ident)
        if old is not None and old.parent != link.parent:
            self._forget_child(old.parent, ident)
        self.links[ident] = link
        self._children.setdefault(link.parent, set()).add(ident)

    def _unlink(self, ident: str) -> None:
        old = self.links.pop(ident, None)
        if old is not None:
            self._forget_child(old.parent, ident)

    def _forget_child(self, parent: str, ident: str) -> None:
        children = self._children.get(parent)
        if children is not None:
            children.discard(ident)
            if not children:
                del self._children[parent]

    # -- the engine tells us about row changes --------------------------------------

    def reopened(self, alert: Alert, now: float) -> None:
        """A row reopened: a link another kind than incident left to a closed parent goes."""
        link = self.links.get(alert.identifier)
        if link is None or link.kind == INCIDENT:
            return
        parent = self._table.get(link.parent)
        if parent is None or parent.status == CLEARED:
            self.set(alert, None, now, link.rule, f"parent {link.parent} is no longer open")

    def gone(self, alert: Alert, now: float, *, deleted: bool) -> None:
        """A row cleared or was deleted: unset the non-incident links of open rows to it."""
        ident = alert.identifier
        for child_id in sorted(self._children.get(ident, ())):
            child = self._table.get(child_id)
            link = self.links.get(child_id)
            if child is None or link is None or link.kind == INCIDENT:
                continue
            if child.status != CLEARED:
                self.set(child, None, now, link.rule, f"parent {ident} is no longer open")
        if deleted:
            self._unlink(ident)

    def size(self) -> int:
        return len(self.links)
