"""Suppressions: which rules hold each row suppressed; `suppressed_by` names the first.

Inhibit, topology, maintenance and flapping rules may each hold one alert: the
row shows the first rule still holding it, and is released when none is left
(each hold and release is a journal note, each change of `suppressed_by` a
transition). A reload that removes or changes a rule releases what that rule
held, unless its new version claims it again while starting: no flap of
`alert.unsuppressed` then `alert.suppressed` for a rule whose change left its
decision as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from correlator.correlate.base import Operator
from correlator.model import Alert
from correlator.table.table import AlertTable

Transition = Callable[[str, Alert, float], None]


class Suppressions:
    __slots__ = ("_claims", "_transition", "holders")

    def __init__(self, transition: Transition) -> None:
        self.holders: dict[str, list[str]] = {}  # row identifier → rules holding it, in order
        self._claims: set[tuple[str, str]] | None = None  # re-claimed while rules start
        self._transition = transition  # the engine's: publish and dispatch a row's change

    def add(self, alert: Alert, now: float, by: str, why: str) -> None:
        holders = self.holders.setdefault(alert.identifier, [])
        if self._claims is not None:  # starting after a reload: this hold is current
            self._claims.add((alert.identifier, by))
        if by in holders:
            return
        holders.append(by)
        alert.note(now, by, f"suppressed: {why}")
        if alert.suppressed_by is None:
            alert.suppressed_by = by
            self._transition("suppressed", alert, now)

    def remove(self, alert: Alert, now: float, by: str, why: str) -> None:
        holders = self.holders.get(alert.identifier)
        if not holders or by not in holders:
            return
        holders.remove(by)
        alert.note(now, by, f"released: {why}")
        if alert.suppressed_by != by:
            return
        if holders:
            alert.suppressed_by = holders[0]
            self._transition("modified", alert, now)
            return
        del self.holders[alert.identifier]
        alert.suppressed_by = None
        self._transition("unsuppressed", alert, now)

    def of(self, alert: Alert) -> tuple[str, ...]:
        return tuple(self.holders.get(alert.identifier, ()))

    def after_reload(
        self,
        start: Callable[[], None],
        retired: Mapping[str, Operator],
        table: AlertTable,
        now: float,
    ) -> None:
        """Start the rules a reload brought (`start`), then release what `retired` rules
        held and no rule claimed again meanwhile (claims count until the end)."""
        claims: set[tuple[str, str]] = set()
        self._claims = claims
        try:
            start()
            for identifier, holders in list(self.holders.items()):
                alert = table.get(identifier)
                for by in [by for by in holders if by in retired]:
                    if alert is not None and (identifier, by) not in claims:
                        retired[by].retire(alert, now)
                        shown = alert.suppressed_by == by
                        self.remove(alert, now, by, "the rule was removed or changed by a reload")
                        if not shown:  # nothing was published: tell rules that watch holds
                            self._transition("modified", alert, now)
        finally:
            self._claims = None
