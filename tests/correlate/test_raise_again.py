"""A synthetic alert raised again on its group's record prints what a new occurrence would."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from correlator.cli import main
from correlator.correlate.synthetic import SyntheticAlert

REPO = Path(__file__).parent.parent.parent
EXAMPLES = sorted((REPO / "examples").glob("*.jsonl"))


def _replay(events: Path, *, again: bool) -> str:
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        if not again:
            patch.setattr(SyntheticAlert, "again", lambda *args, **kwargs: None)
        with redirect_stdout(out):
            main(["replay", str(events), "--rules", str(REPO / "rules"), "--until", "+4h"])
    return out.getvalue()


@pytest.mark.parametrize("events", EXAMPLES, ids=lambda p: p.name)
def test_example_scenarios_alike_with_and_without_the_record(events: Path) -> None:
    """Every example scenario prints the same changes whether raises reuse a record or not."""
    assert _replay(events, again=True) == _replay(events, again=False)


def test_a_storm_with_pauses_alike_with_and_without_the_record(tmp_path: Path) -> None:
    """Storms raised, grown member by member, cleared after a pause and raised anew print
    the same changes (each row as it was) either way."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(
        """
correlate:
  - name: site-unreachable
    kind: threshold
    match: ['alertgroup="NodeUnreachable"']
    group_by: [labels.site]
    count: 3
    window: 1m
    alert: {node: "{{ group.site }}", alertgroup: SiteUnreachable,
            severity: "{{ 'critical' if count > 8 else 'major' }}"}
"""
    )
    lines = []
    at = 1_767_225_600.0
    for i in range(240):
        at += 400.0 if i % 60 == 59 else 1.0 + i % 3  # a pause clears the storms
        site = ("ams1", "fra1")[i % 2]
        event = (
            f'{{"timestamp": {at}, "node": "host-{i % 7}", "alertgroup": "NodeUnreachable", '
            f'"severity": "critical", "labels": {{"site": "{site}"}}}}'
        )
        lines.append(event)
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")

    def replay(*, again: bool) -> str:
        out = io.StringIO()
        with pytest.MonkeyPatch.context() as patch:
            if not again:
                patch.setattr(SyntheticAlert, "again", lambda *args, **kwargs: None)
            with redirect_stdout(out):
                main(["replay", str(events), "--rules", str(tmp_path / "rules")])
        return out.getvalue()

    reused = []
    again = SyntheticAlert.again

    def counted(*args: object, **kwargs: object) -> object:
        record = again(*args, **kwargs)  # type: ignore[arg-type]
        reused.append(record is not None)
        return record

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SyntheticAlert, "again", counted)
        assert replay(again=True) == replay(again=False)
    assert sum(reused) > 100  # a record per group, reused member after member
