"""`correlator alerts …` against a running daemon."""

from __future__ import annotations

import asyncio
import io

from support.daemon import Running

from correlator.cli import main
from correlator.client import run


async def test_list_and_act_from_the_command_line(daemon: Running) -> None:
    """list with matchers, ack, assign, journal, severity, clear; errors exit 1 or 2."""
    async with daemon() as (app, client):
        events = [{"node": "db1", "alertgroup": "Disk", "severity": "major"},
                  {"node": "web1", "alertgroup": "Load", "severity": "warning"}]  # fmt: skip
        await client.post("/api/v1/events", json=events)
        url = str(client.base_url)

        def cli(command: str, *args: str) -> tuple[int, str]:
            out = io.StringIO()
            return run(url, None, command, list(args), as_json=False, out=out), out.getvalue()

        status, text = await asyncio.to_thread(cli, "list", "severity>=major")
        assert status == 0
        assert text.splitlines() == [
            "db1:Disk::  major  open  tally 1  Disk on db1",
            "1 of 1 alerts",
        ]
        assert (await asyncio.to_thread(cli, "ack", "db1:Disk::"))[1].startswith(
            "db1:Disk::  major  acknowledged @api"
        )
        assert (await asyncio.to_thread(cli, "assign", "db1:Disk::", "alice"))[0] == 0
        assert (await asyncio.to_thread(cli, "journal", "db1:Disk::", "disk", "swapped"))[0] == 0
        assert (await asyncio.to_thread(cli, "severity", "db1:Disk::", "critical"))[0] == 0
        assert (await asyncio.to_thread(cli, "clear", "web1:Load::"))[0] == 0
        assert (await asyncio.to_thread(cli, "ack", "nope"))[0] == 1
        row = app.engine.table.get("db1:Disk::")
        assert row is not None and (row.owner, row.severity) == ("alice", 5)
        assert row.journal[-2].text == "disk swapped"
    assert run("http://127.0.0.1:9", None, "list", [], as_json=False, out=io.StringIO()) == 2


def test_usage_errors_exit_2() -> None:
    """An action without its identifier or value is a usage error."""
    assert main(["alerts", "ack"]) == 2
    assert main(["alerts", "assign", "db1:Disk::"]) == 2
