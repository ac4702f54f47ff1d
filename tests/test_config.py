"""The daemon's configuration: defaults, the file, env overrides, and errors that name the key."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from correlator.config import ConfigError, expand_env, load_config


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "correlator.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_no_file_runs_on_the_embedded_defaults() -> None:
    """HTTP on 127.0.0.1:8080, SQLite in ./var/, rules from ./rules, no broker."""
    config = load_config(None)
    assert config.http.host_port == ("127.0.0.1", 8080)
    assert config.state.url == "sqlite:///var/correlator.db"
    assert config.rules == Path("rules")
    assert (config.sources, config.sinks, config.auth) == ([], [], None)
    assert config.dead_letter.file == "var/dead-letter.jsonl"


def test_the_design_example_loads(tmp_path: Path) -> None:
    """The configuration shown in DESIGN.md §6 is accepted as written."""
    path = _write(
        tmp_path,
        """\
        rules: ./rules
        state: {url: "sqlite:///var/correlator.db"}
        http: {listen: "127.0.0.1:8080"}
        sources:
          - kafka: {bootstrap_servers: "127.0.0.1:9092", topics: [events], group_id: correlator}
          - mqtt: {url: "mqtt://127.0.0.1:1883", topics: ["events/#"], client_id: correlator-1}
        sinks:
          - kafka: {bootstrap_servers: "127.0.0.1:9092", topic: alerts}
          - mqtt: {url: "mqtt://127.0.0.1:1883", prefix: correlator/alerts}
        dead_letter: {file: ./var/dead-letter.jsonl}
        auth:
          tokens:
            - {name: grafana, role: viewer, token: "${CORRELATOR_TOKEN_GRAFANA}"}
            - {name: noc, role: operator, token_file: /run/secrets/noc-token}
        """,
    )
    config = load_config(path)
    assert config.sources[0].kafka is not None and config.sources[0].kafka.topics == ["events"]
    assert config.sources[1].mqtt is not None and config.sources[1].mqtt.client_id == "correlator-1"
    assert config.sinks[1].mqtt is not None and config.sinks[1].mqtt.prefix == "correlator/alerts"
    assert config.auth is not None and [t.role for t in config.auth.tokens] == [
        "viewer",
        "operator",
    ]


def test_env_overrides_a_key_of_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`CORRELATOR_<SECTION>__<KEY>` wins over the file; other keys of the section stay."""
    path = _write(tmp_path, "state: {url: 'sqlite:///a.db', synchronous: full}\n")
    monkeypatch.setenv("CORRELATOR_STATE__URL", "postgresql://correlator@db/correlator")
    monkeypatch.setenv("CORRELATOR_ENGINE__MAX_LATENESS", "10m")
    config = load_config(path)
    assert config.state.url == "postgresql://correlator@db/correlator"
    assert config.state.synchronous == "full"
    assert config.engine.max_lateness == 600.0


def test_a_bad_value_names_its_key_and_position(tmp_path: Path) -> None:
    """One message per problem: file:line:col, the dotted key, what is wrong."""
    path = _write(
        tmp_path,
        """\
        state:
          synchronous: sometimes
        sources:
          - kafka: {topics: [events]}
          - kafka: {bootstrap_servers: "b:9092", topics: [e]}
            mqtt: {url: "mqtt://b", topics: [e]}
        enigne: {max_lateness: 5m}
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"{path}:2:16: state.synchronous: Input should be 'normal' or")
    assert f"{path}:4:12: sources[0].kafka.bootstrap_servers: Field required" in lines
    assert any(
        line.startswith(f"{path}:5:5: sources[1]: Value error, give exactly one of kafka, mqtt")
        for line in lines
    )
    assert any(
        line.startswith(f"{path}:7:1: enigne: Extra inputs are not permitted") for line in lines
    )


def test_a_bad_env_value_says_it_came_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An override that fails validation is reported with its key, not a file position."""
    monkeypatch.setenv("CORRELATOR_ENGINE__MAX_LATENESS", "soon")
    with pytest.raises(ConfigError, match=r"defaults: engine\.max_lateness: .*not a duration"):
        load_config(None)


def test_without_tokens_only_loopback_may_listen(tmp_path: Path) -> None:
    """No auth configured: listening on another address is refused; with tokens it is fine."""
    with pytest.raises(ConfigError, match="not a loopback address and no auth tokens"):
        load_config(_write(tmp_path, "http: {listen: '0.0.0.0:8080'}\n"))
    load_config(_write(tmp_path, "http: {listen: 'localhost:9000'}\n"))
    load_config(_write(tmp_path, "http: {listen: '[::1]:9000'}\n"))
    config = load_config(
        _write(
            tmp_path,
            "http: {listen: '0.0.0.0:8080'}\n"
            "auth: {tokens: [{name: ops, role: admin, token: abc}]}\n",
        )
    )
    assert config.http.host_port == ("0.0.0.0", 8080)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        load_config(_write(tmp_path, "http: {listen: '127.0.0.1'}\n"))


def test_tokens_come_from_env_or_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`${ENV}` is expanded (an unset one is an error naming it); `token_file` is read."""
    secret = tmp_path / "noc-token"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("GRAFANA_TOKEN", "g-token")
    config = load_config(
        _write(
            tmp_path,
            f"""\
            auth:
              tokens:
                - {{name: grafana, role: viewer, token: "${{GRAFANA_TOKEN}}"}}
                - {{name: noc, role: operator, token_file: {secret}}}
            """,
        )
    )
    assert config.auth is not None
    assert [t.secret() for t in config.auth.tokens] == ["g-token", "s3cret"]
    with pytest.raises(ConfigError, match=r"UNSET_TOKEN is not set"):
        expand_env("Bearer ${UNSET_TOKEN}")
    with pytest.raises(ConfigError, match="exactly one of token, token_file"):
        load_config(_write(tmp_path, "auth: {tokens: [{name: x, role: admin}]}\n"))


def test_unreadable_or_broken_files_are_one_clear_error(tmp_path: Path) -> None:
    """A missing file, a YAML syntax error, a list instead of a mapping."""
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r":2:1: YAML syntax error"):
        load_config(_write(tmp_path, "state: {url: [\n"))
    with pytest.raises(ConfigError, match=":1:1: the configuration must be a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_sources_and_sinks_are_named_by_kind_and_position_unless_named(tmp_path: Path) -> None:
    """A `name` keys what the store keeps for the entry, so reordering the list keeps it;
    without one, `<kind>-<position>` (the names stores were written with before)."""
    path = _write(
        tmp_path,
        """\
        sources:
          - kafka: {bootstrap_servers: "b:9092", topics: [e]}
          - name: plant-floor
            mqtt: {url: "mqtt://b", topics: [e]}
          - file: {path: "-"}
        sinks:
          - name: alerts-eu
            kafka: {bootstrap_servers: "b:9092", topic: alerts}
          - mqtt: {url: "mqtt://b"}
        """,
    )
    config = load_config(path)
    assert config.source_names == ["kafka-0", "plant-floor", "file-2"]
    assert config.sink_names == ["alerts-eu", "mqtt-1"]


@pytest.mark.parametrize(
    ("sources", "sinks", "error"),
    [
        ('[{name: a, file: {path: x}}, {name: a, file: {path: y}}]', "[]",
         "sources: the name 'a' is used twice"),
        ('[{file: {path: x}}, {name: file-0, file: {path: y}}]', "[]",
         "sources: the name 'file-0' is used twice"),
        ('[{name: http, file: {path: x}}]', "[]",
         "sources: the name 'http' (the HTTP ingest's) is used twice"),
        ("[]", '[{mqtt: {url: "mqtt://b"}}, {name: mqtt-0, mqtt: {url: "mqtt://c"}}]',
         "sinks: the name 'mqtt-0' is used twice"),
    ],
)  # fmt: skip
def test_two_entries_of_one_name_are_refused(
    tmp_path: Path, sources: str, sinks: str, error: str
) -> None:
    """They would share stored offsets (or published positions), and metrics series."""
    path = _write(tmp_path, f"sources: {sources}\nsinks: {sinks}\n")
    with pytest.raises(ConfigError, match=re.escape(error)):
        load_config(path)


@pytest.mark.parametrize("name", ["", "a/b", "-x", "x y", "é", "n" * 64])
def test_a_name_is_one_word_safe_in_a_store_key_and_a_metric_label(
    tmp_path: Path, name: str
) -> None:
    path = _write(tmp_path, f"sources: [{{name: '{name}', file: {{path: x}}}}]\n")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.name: String should match pattern"):
        load_config(path)
