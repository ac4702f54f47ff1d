"""Synthetic alerts: values that read only the group are made once per group, never stale."""

from __future__ import annotations

from correlator.correlate.synthetic import SyntheticAlert
from correlator.model import Alert
from correlator.ruleset.schema import AlertSpec


def _fields(alert: Alert) -> tuple[object, ...]:
    return (alert.identifier, alert.node, alert.alertgroup, alert.severity, alert.summary,
            alert.alertkey, alert.labels, alert.annotations)  # fmt: skip


def test_group_only_values_are_reused_per_group_and_match_a_full_render() -> None:
    """Each raise equals a render of every template (`extra` forces one), group by group."""
    spec = AlertSpec(
        node="{{ group.site }}",
        alertgroup="SiteDown",
        severity="critical",
        summary="{{ count }} down at {{ group['labels.site'] }}",
        labels={"site": "{{ group.site }}", "seen": "{{ count }}"},
        annotations={"rule": "{{ rule }}"},
    )
    synthetic = SyntheticAlert("site-down", spec)
    trigger = Alert("h1", "h1", "NodeUnreachable")
    for count, site in ((5, "ams1"), (6, "ams1"), (7, "fra1"), (8, "ams1")):
        group = [("labels.site", site)]
        cached = synthetic.build(group, 1.0, trigger=trigger, members=(trigger,), count=count)
        full = synthetic.build(group, 1.0, trigger=trigger, members=(trigger,), count=count,
                               extra={})  # fmt: skip
        assert _fields(cached) == _fields(full)
        assert cached.node == site and cached.labels == {"site": site, "seen": str(count)}
        assert cached.summary == f"{count} down at {site}"
        assert cached.identifier == f"correlator:site-down:{site}"
        assert cached.labels is not full.labels  # each occurrence owns its dicts


def test_an_empty_group_only_severity_leaves_the_members_to_decide() -> None:
    """A severity template that renders empty is not fixed: the members' highest applies."""
    synthetic = SyntheticAlert("storm", AlertSpec(severity="{{ group.missing }}"))
    minor, critical = Alert("a", "a", "X", severity=3), Alert("b", "b", "X", severity=5)
    assert synthetic.build([("node", "n")], 1.0, members=(minor,), count=1).severity == 3
    assert synthetic.build([("node", "n")], 1.0, members=(critical,), count=2).severity == 5
