"""The template context of an incident's title, read name by name.

The title is rendered at every publish of an incident, mostly from the memo of
a template that reads a name or two. Building the whole context (every field
of the root cause as a dict, `SyntheticAlert.context`) cost more than the rest
of the publish, so names are resolved when asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from correlator.correlate.synthetic import SyntheticAlert
from correlator.model import Alert
from correlator.ruleset.paths import alert_context_value


class TitleContext(Mapping[str, Any]):
    """What `SyntheticAlert.context` would hold, each name resolved on demand.

    A name resolves to group, count, members, rule, then the root cause's
    fields as `alert_context` has them; iterating (Jinja2 copies the mapping
    when it renders past the memo) builds the real context once.
    """

    __slots__ = ("_alerts", "_count", "_full", "_group", "_root", "_synthetic", "_values")

    def __init__(
        self,
        synthetic: SyntheticAlert,
        group: tuple[tuple[str, str], ...],
        values: dict[str, str],
        root: Alert | None,
        alerts: list[Alert],
        count: int,
    ) -> None:
        self._synthetic, self._group, self._values = synthetic, group, values
        self._root, self._alerts, self._count = root, alerts, count
        self._full: dict[str, Any] | None = None

    def __getitem__(self, name: str) -> Any:
        if self._full is not None:
            return self._full[name]
        if name == "group":
            return self._values
        if name == "count":
            return self._count
        if name == "members":
            return self._alerts
        if name == "rule":
            return self._synthetic.rule
        if self._root is None:
            raise KeyError(name)
        return alert_context_value(self._root, name)

    def _whole(self) -> dict[str, Any]:
        if self._full is None:
            self._full = self._synthetic.context(self._group, self._root, self._alerts, self._count)
        return self._full

    def __iter__(self) -> Iterator[str]:
        return iter(self._whole())

    def __len__(self) -> int:
        return len(self._whole())
