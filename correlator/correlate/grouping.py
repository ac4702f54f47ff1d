"""Group keys: the values of a rule's `group_by` / `on` fields, compiled once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from correlator.model import Alert
from correlator.ruleset.matchers import as_text
from correlator.ruleset.paths import alert_getter

Key = tuple[str, ...]


class FieldKey:
    """Reads the named fields of an alert as a hashable key (missing values are "")."""

    __slots__ = ("names", "of")

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)
        getters = tuple(alert_getter(name) for name in self.names)
        self.of: Callable[[Alert], Key]  # specialised by arity: this runs per event
        if not getters:
            self.of = lambda alert: ()
        elif len(getters) == 1 and self.names[0].startswith("labels.") and self.names[0][7:]:
            label = self.names[0][7:]  # `group_by: [labels.site]`, the usual: read inline

            def of_label(alert: Alert) -> Key:
                value = alert.labels.get(label)
                return (value if type(value) is str else as_text(value),)

            self.of = of_label
        elif len(getters) == 1:
            (get,) = getters

            def of_one(alert: Alert) -> Key:
                value = get(alert)
                return (value if type(value) is str else as_text(value),)

            self.of = of_one
        else:
            self.of = lambda alert: tuple([as_text(get(alert)) for get in getters])

    def pairs(self, key: Key) -> list[tuple[str, str]]:
        """(name as written, value) for each field: the `group` of synthetic alerts."""
        return list(zip(self.names, key, strict=True))

    def describe(self, key: Key) -> str:
        """`node=r1, alertkey=xe-0/0/1`, for journal notes."""
        return ", ".join(f"{n}={v}" for n, v in zip(self.names, key, strict=True))
