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


def test_raising_again_fills_the_groups_record_as_build_makes_it() -> None:
    """`again` hands out the same values `build` makes, on one record per group, and only
    for a group whose alert is open in the rows (a new or cleared row gets a new one)."""
    spec = AlertSpec(
        node="{{ group.site }}",
        severity="{{ 'critical' if count > 6 else 'major' }}",
        summary="{{ count }} down at {{ group['labels.site'] }}",
        labels={"site": "{{ group.site }}"},
    )
    synthetic = SyntheticAlert("site-down", spec)
    trigger = Alert("h1", "h1", "NodeUnreachable")
    group = [("labels.site", "ams1")]
    rows: dict[str, Alert] = {}
    assert synthetic.again(group, 1.0, rows, trigger=trigger, count=5) is None  # no row yet
    row = synthetic.build(group, 1.0, trigger=trigger, count=5)
    rows[row.identifier] = row
    records = []
    for count in (6, 7, 8):
        again = synthetic.again(group, float(count), rows, trigger=trigger, count=count)
        assert again is not None and again is not row
        built = synthetic.build(group, float(count), trigger=trigger, count=count)
        assert _fields(again) == _fields(built)
        assert (again.last_occurrence, again.expire_after) == (float(count), built.expire_after)
        records.append(again)
    assert records[0] is records[1] is records[2]
    row.status = "cleared"
    assert synthetic.again(group, 9.0, rows, trigger=trigger, count=9) is None
    labelled = SyntheticAlert("x", AlertSpec(labels={"seen": "{{ count }}"}))
    rows = {"correlator:x:ams1": labelled.build(group, 1.0, count=1)}
    assert labelled.again(group, 2.0, rows, count=2) is None  # a label that varies: built anew


def test_raising_again_with_the_group_rendered_in_matches_a_full_render() -> None:
    """A group's templates bound to it (`{{ count }}` left, or the trigger's fields too)
    give what a render of every template gives, raise after raise."""
    specs = [
        AlertSpec(severity="critical", summary="{{ count }} down at {{ group.site }}"),
        AlertSpec(summary="{{ count }} down at {{ group.site }} ({{ node }})"),
        AlertSpec(node="{{ group.site }}-{{ count }}", alertkey="{{ rule }}:{{ count }}"),
        AlertSpec(severity="{{ 'critical' if count > 6 else 'major' }}", summary="{{ count }}"),
        AlertSpec(summary="{{ group.missing }}"),  # empty: the default, with the count
    ]
    for spec in specs:
        synthetic = SyntheticAlert("storm", spec)
        group = [("labels.site", "ams1")]
        rows: dict[str, Alert] = {}
        for count in range(5, 10):
            trigger = Alert(f"h{count}", f"h{count}", "NodeUnreachable", severity=count % 6)
            members = (trigger,)
            full = synthetic.build(group, 1.0, trigger=trigger, members=members, count=count,
                                   extra={})  # fmt: skip
            again = synthetic.again(group, 1.0, rows, trigger=trigger, members=members,
                                    count=count)  # fmt: skip
            if again is None:
                rows[full.identifier] = full
                continue
            assert _fields(again) == _fields(full), spec


def test_the_default_identifier_of_a_key_is_the_one_a_raise_gets() -> None:
    """A pair's unpaired second looks up the default identifier from its key's texts;
    an `alert:` that sets an identifier is asked through `identifier_for`."""
    group = [("node", "n1"), ("alertkey", "job:7")]
    plain = SyntheticAlert("late", AlertSpec(summary="{{ group.node }}"))
    expected = plain.build(group, 1.0, count=1).identifier
    assert plain.default_identifier(("n1", "job:7")) == expected == "correlator:late:n1:job:7"
    assert plain.identifier_for(group, None, (), 1) == expected
    named = SyntheticAlert("late", AlertSpec(identifier="{{ group.node }}-late"))
    assert named.default_identifier(("n1", "job:7")) is None
