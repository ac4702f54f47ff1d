"""Group keys: each arity's and each field's reader gives what the generic getter gives."""

from __future__ import annotations

import pytest

from correlator.correlate.grouping import FieldKey
from correlator.model import Alert
from correlator.ruleset.matchers import as_text
from correlator.ruleset.paths import alert_getter

ALERTS = [
    Alert("a", "n1", "Down", labels={"site": "ams1", "a.b": "x"}),
    Alert("b", "n2", "Down", labels={"site": 7, "alertname": "Other"}),  # type: ignore[dict-item]
    Alert("c", "n3", "Down"),
]


@pytest.mark.parametrize("name", ["labels.site", "labels.a.b", "labels.", "node", "alertname"])
def test_a_key_of_one_field_reads_what_its_getter_reads(name: str) -> None:
    """`labels.site` is read inline; the others through their getter: the same key."""
    key, get = FieldKey([name]), alert_getter(name)
    for alert in ALERTS:
        assert key.of(alert) == (as_text(get(alert)),)
