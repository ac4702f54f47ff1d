"""`policies:`: lookups in tables, set, notify; on create, update, clear, acknowledge."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from correlator.engine import Engine
from correlator.errors import RuleSetError
from correlator.ruleset.loader import load_rules
from correlator.ruleset.tables import sql_rows_text
from correlator.ruleset.version import RuleVersion

RULES = """
tables:
  cmdb: {file: tables/cmdb.csv, key: host, default: {team: noc}}
  sites: {key: site, rows: [{site: ams, city: Amsterdam}]}
receivers: [{name: dba-pager}]
policies:
  - name: enrich
    on: [create]
    actions:
      - lookup: {table: cmdb, key: "{{ node }}"}
      - lookup: {table: sites, key: "{{ labels.site }}", into: annotations}
      - set: {labels.priority: "{{ 'P1' if labels.tier == '1' else 'P3' }}", severity: "{{ 'critical' if labels.tier == '1' else '' }}"}
  - name: page-dba
    on: [create, acknowledge]
    match: ['labels.team="dba"']
    actions: [{notify: dba-pager}]
"""
CMDB = "host,team,tier,site\ndb1,dba,1,ams\nweb1,web,2,fra\n"


def _rules(tmp_path: Path, text: str = RULES, cmdb: str = CMDB) -> Path:
    (tmp_path / "tables").mkdir(exist_ok=True)
    (tmp_path / "tables" / "cmdb.csv").write_text(cmdb)
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def test_lookups_and_set_enrich_the_row_before_anyone_else_sees_it(tmp_path: Path) -> None:
    engine = Engine(load_rules(_rules(tmp_path)), snapshots=True)
    changes = engine.process({"node": "db1", "alertgroup": "Disk"}, 1.0)
    row = engine.table.rows["db1:Disk::"]
    assert row.labels == {"team": "dba", "tier": "1", "site": "ams", "priority": "P1"}
    assert row.annotations == {"city": "Amsterdam"}
    assert row.severity == 5
    assert [c.kind for c in changes] == [
        "alert.created",
        "alert.updated",
        "notification",
        "alert.updated",
    ]
    assert changes[2].receiver == "dba-pager"
    assert "policy enrich: labels.team=dba" in row.journal[0].text
    other = Engine(load_rules(tmp_path))
    other.process({"node": "zz", "alertgroup": "Disk"}, 1.0)
    assert other.table.rows["zz:Disk::"].labels == {"team": "noc", "priority": "P3"}
    assert other.table.rows["zz:Disk::"].severity == 1  # an empty severity leaves it


def test_triggers_run_on_their_transitions_only(tmp_path: Path) -> None:
    engine = Engine(load_rules(_rules(tmp_path)))
    engine.process({"node": "db1", "alertgroup": "Disk"}, 1.0)
    assert engine.process({"node": "db1", "alertgroup": "Disk"}, 2.0)[-1].kind == "alert.updated"
    acked = engine.acknowledge("db1:Disk::", "op", 3.0)
    assert [c.receiver for c in acked if c.kind == "notification"] == ["dba-pager"]


def test_a_changed_table_is_a_changed_rule_and_part_of_the_journaled_version(
    tmp_path: Path,
) -> None:
    first = RuleVersion.read(_rules(tmp_path))
    second = RuleVersion.read(_rules(tmp_path, cmdb=CMDB.replace("dba,1", "dba,2")))
    assert first.digest != second.digest  # the journal keeps each version, tables included
    engine = Engine(first.ruleset)
    engine.tick(0.0)
    kept = engine.operators["enrich"]
    engine.load(second.ruleset)
    assert engine.operators["enrich"] is not kept
    replayed = Engine(RuleVersion.of(first.blob).ruleset)
    replayed.process({"node": "db1", "alertgroup": "Disk"}, 1.0)
    assert replayed.table.rows["db1:Disk::"].labels["tier"] == "1"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("table: cmdb, key", "table: nope, key"),
            "rules.yaml:10:25: policies[0]: no table 'nope'",
        ),
        (("{notify: dba-pager}", "{notify: nobody}"), "undefined receiver 'nobody'"),
        (("tables/cmdb.csv", "tables/gone.csv"), "tables.cmdb: no table file tables/gone.csv"),
        (("on: [create]", "on: [explode]"), "policies[0].on[0]"),
        (("- set: {", "- set: {bogus: x, "), "cannot set 'bogus'"),
        (("actions: [{notify: dba-pager}]", "actions: [{}]"), "exactly one of lookup, set, notify"),
        (("{key: site, rows:", "{key: site, sql: 'select 1', rows:"), "exactly one of file, rows"),
        (("{key: site, rows:", "{key: site, ttl: 5m, rows:"), "ttl is for sql tables"),
        *[
            (
                ("{key: site, rows: [{site: ams, city: Amsterdam}]}", f"{{key: site, sql: {q}}}"),
                "a sql table is read whole, never per key",
            )
            for q in ("'select * from s where site = :key'", "'select * from s where a = ?'")
        ],
    ],
)
def test_mistakes_are_errors_at_their_line(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    _rules(tmp_path, RULES.replace(*edit))
    with pytest.raises(RuleSetError) as caught:
        load_rules(tmp_path)
    assert message in str(caught.value), str(caught.value)


def test_a_sql_table_takes_its_rows_from_the_rule_set_texts(tmp_path: Path) -> None:
    """The daemon adds `sql:<name>` to the texts it loads (and journals); without
    them (`check`, `test`, `replay`) the table is empty and lookups take the default."""
    sites = "{key: site, rows: [{site: ams, city: Amsterdam}]}"
    text = RULES.replace(sites, "{key: site, sql: 'select site, city from sites', ttl: 1m}")
    rules = _rules(tmp_path, text)
    assert not RuleVersion.read(rules).ruleset.sql_tables["sites"].file
    rows = sql_rows_text([{"site": "ams", "city": "Amsterdam", "n": 1, "gone": None}])
    for texts, expected in (
        ({}, {}),
        ({"sql:sites": rows}, {"city": "Amsterdam", "n": "1", "gone": ""}),
    ):
        version = RuleVersion.read(rules, texts)
        assert RuleVersion.of(version.blob).digest == version.digest  # what the journal keeps
        engine = Engine(version.ruleset)
        engine.process({"node": "db1", "alertgroup": "Disk"}, 1.0)
        assert engine.table.rows["db1:Disk::"].annotations == expected


def test_an_incident_policy_acts_on_the_root_cause(tmp_path: Path) -> None:
    _rules(
        tmp_path,
        """
receivers: [{name: major-incident-bridge}]
correlate:
  - {name: svc, kind: incident, match: ['alertgroup=~"Down|Slow"'], group_by: [labels.svc],
     window: 5m, min_members: 2, root_cause: ['alertgroup="Down"']}
policies:
  - name: open-a-bridge
    on: [incident]
    match: ['severity>=major']
    actions:
      - set: {annotations.bridge: "https://meet.example/{{ labels.svc }}"}
      - notify: major-incident-bridge
""",
    )
    engine = Engine(load_rules(tmp_path))
    engine.process({"node": "api", "alertgroup": "Slow", "labels": {"svc": "pay"}}, 1.0)
    first = engine.process(
        {"node": "db", "alertgroup": "Down", "severity": "major", "labels": {"svc": "pay"}}, 2.0
    )
    kinds = [c.kind for c in first]
    assert "incident.opened" in kinds and "notification" in kinds
    assert engine.table.rows["db:Down::"].annotations == {"bridge": "https://meet.example/pay"}
    assert engine.table.rows["api:Slow::"].annotations == {}  # not the root cause
