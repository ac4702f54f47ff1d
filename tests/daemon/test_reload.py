"""Hot reload: `POST /-/reload` and rule-file changes; a broken rule set keeps the old rules."""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.daemon import Running, write_rules

DOWN_RAISES = """
correlate:
  - name: site-outage
    kind: threshold
    match: ['alertgroup="Down"']
    group_by: [labels.site]
    count: {count}
    window: 5m
"""


async def _down(client: object, node: str) -> None:
    event = {"node": node, "alertgroup": "Down", "labels": {"site": "ams"}}
    response = await client.post("/api/v1/events", json=event)  # type: ignore[attr-defined]
    assert response.status_code == 200


async def test_reload_swaps_rules_and_a_broken_set_is_refused(
    daemon: Running, rules_dir: Path
) -> None:
    """400 with `file:line:col` errors and the old rules still running; then 200 and the
    new rule in force; both counted in correlator_reloads_total."""
    write_rules(rules_dir, DOWN_RAISES.format(count=3))
    async with daemon(watch_rules=False) as (app, client):
        (rules_dir / "broken.yaml").write_text("correlate:\n  - name: x\n    kind: nope\n")
        refused = await client.post("/-/reload")
        assert refused.status_code == 400
        (error,) = refused.json()["errors"]
        assert error.startswith(f"{rules_dir / 'broken.yaml'}:2:5: correlate[0]: Input tag 'nope'")
        assert app.engine.operators["site-outage"].spec.count == 3
        (rules_dir / "broken.yaml").unlink()
        write_rules(rules_dir, DOWN_RAISES.format(count=2))
        loaded = await client.post("/-/reload")
        assert loaded.status_code == 200 and "1 correlate rules" in loaded.json()["loaded"]
        await _down(client, "a")
        await _down(client, "b")
        assert app.engine.table.get("correlator:site-outage:ams") is not None
        metrics = (await client.get("/metrics")).text
    assert 'correlator_reloads_total{result="failure"} 1.0' in metrics
    assert 'correlator_reloads_total{result="success"} 1.0' in metrics


async def test_a_rule_file_change_reloads_by_itself(daemon: Running, rules_dir: Path) -> None:
    """Writing a rule file is enough: the watcher reloads after the burst of writes."""
    async with daemon() as (app, client):
        write_rules(rules_dir, DOWN_RAISES.format(count=1))
        async with asyncio.timeout(20):
            while "site-outage" not in app.engine.operators:  # noqa: ASYNC110 - a file watcher
                await asyncio.sleep(0.05)
        await _down(client, "a")
        assert app.engine.table.get("correlator:site-outage:ams") is not None
