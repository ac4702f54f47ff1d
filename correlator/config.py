"""The daemon's configuration (DESIGN.md §6): one YAML file, every key overridable by env.

`CORRELATOR_<SECTION>__<KEY>` overrides a key (`CORRELATOR_STATE__URL`,
`CORRELATOR_HTTP__LISTEN`); a list section takes JSON (`CORRELATOR_SOURCES='[…]'`).
With no file at all the embedded defaults run the daemon: HTTP ingest, API and
UI on 127.0.0.1:8080, SQLite state in `./var/`, rules from `./rules`.
A bad value is one message naming the key (with `file:line:col` when it comes
from the file); the CLI exits 2 on it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from correlator.errors import CorrelatorError
from correlator.ruleset.schema import Duration
from correlator.ruleset.yamlpos import YamlError, dotted, load, read_utf8

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(CorrelatorError):
    """The configuration cannot be used; the message names the key (and where it is)."""


def _exactly_one(model: BaseModel, keys: tuple[str, ...]) -> None:
    given = [key for key in keys if getattr(model, key) is not None]
    if len(given) != 1:
        raise ValueError(
            f"give exactly one of {', '.join(keys)} (got {', '.join(given) or 'none'})"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# a source's or sink's name keys what the store keeps for it (offsets, published position)
# and labels its metrics: a path- and label-safe word
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class Section(BaseModel):
    """Unknown keys are errors: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StateConfig(Section):
    url: str = "sqlite:///var/correlator.db"
    # NORMAL survives a killed process; FULL also a power loss, at a cost per commit
    synchronous: Literal["normal", "full"] = "normal"
    commit_interval: Duration = 0.005  # group commit: at most this long, or …
    commit_max_events: Annotated[int, Field(ge=1)] = 2000  # … this many events per batch
    # a snapshot of the engine every this many journal entries or seconds (and at shutdown):
    # a restart replays at most that much journal
    snapshot_entries: Annotated[int, Field(ge=1)] = 1_000_000
    snapshot_interval: Duration = 300.0
    # the scope of this daemon's default engine (HTTP, MQTT, files, Kafka not partitioned):
    # daemons sharing one PostgreSQL store each need their own
    scope: Annotated[str, Field(min_length=1)] = "default"


class NotifyConfig(Section):
    """How notifications are delivered (the receivers themselves are in the rules)."""

    external_url: str = ""  # the webhook payload's externalURL (default: http://<http.listen>)
    max_attempts: Annotated[int, Field(ge=1)] = 8  # then dead-lettered, noted on the alerts
    retry_min: Duration = 1.0  # backoff doubles from here …
    retry_max: Duration = 300.0  # … up to here, with jitter
    breaker_failures: Annotated[int, Field(ge=1)] = 5  # failures in a row that open …
    breaker_open: Duration = 60.0  # … a receiver's circuit for this long
    concurrency: Annotated[int, Field(ge=1)] = 8  # requests in flight (remote APIs are slow)


class HttpConfig(Section):
    listen: str = "127.0.0.1:8080"
    max_body_bytes: Annotated[int, Field(ge=1)] = 10 * 1024 * 1024

    @property
    def host_port(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"listen must be HOST:PORT, not {self.listen!r}")
        return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - an empty host means all


class KafkaSource(Section):
    bootstrap_servers: str
    topics: Annotated[list[str], Field(min_length=1)]
    group_id: str = "correlator"
    # how fast the group notices a member gone (rebalance): aiokafka's defaults
    heartbeat_interval: Duration = 3.0
    session_timeout: Duration = 10.0
    # one engine per partition, restored from the store when the group assigns it (scale-out:
    # producers key related events alike, so they share a partition); else the default scope
    partitioned: bool = False


class MqttSource(Section):
    url: str
    topics: Annotated[list[str], Field(min_length=1)]
    client_id: str = "correlator"
    protocol: Literal["5", "3.1.1"] = "5"
    shared_group: str | None = None  # subscribe as `$share/<group>/<topic>`
    session_expiry: Duration = 86400.0  # v5: how long the broker keeps unacknowledged messages
    # v5: messages the broker may send before we acknowledge: the most a crash can deliver
    # twice, and what the daemon holds when its queue is full (3.1.1: the broker's setting)
    receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 1000


class FileSource(Section):
    path: str  # JSON lines; `-` is standard input


class SourceConfig(Section):
    """One source: exactly one of its kinds (`- kafka: {...}`), and optionally a `name`."""

    name: Name | None = None
    kafka: KafkaSource | None = None
    mqtt: MqttSource | None = None
    file: FileSource | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        _exactly_one(self, ("kafka", "mqtt", "file"))
        return self


class KafkaSink(Section):
    bootstrap_servers: str
    topic: str


class MqttSink(Section):
    url: str
    prefix: str = "correlator/alerts"


class SinkConfig(Section):
    """One sink: exactly one of its kinds, and optionally a `name`."""

    name: Name | None = None
    kafka: KafkaSink | None = None
    mqtt: MqttSink | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        _exactly_one(self, ("kafka", "mqtt"))
        return self


class MqttTopic(Section):
    url: str
    topic: str


class DeadLetterConfig(Section):
    file: str | None = None
    kafka: KafkaSink | None = None
    mqtt: MqttTopic | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        _exactly_one(self, ("file", "kafka", "mqtt"))
        return self


class Token(Section):
    name: str
    role: Literal["viewer", "operator", "admin"]
    token: str | None = None
    token_file: Path | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        _exactly_one(self, ("token", "token_file"))
        return self

    def secret(self) -> str:
        """The token itself: `${ENV}` references expanded, or the file's first line."""
        if self.token_file is not None:
            try:
                return self.token_file.read_text().strip()
            except OSError as exc:
                why = exc.strerror or str(exc)
                raise ConfigError(
                    f"auth token {self.name}: cannot read {self.token_file}: {why}"
                ) from None
        assert self.token is not None
        return expand_env(self.token)


class AuthConfig(Section):
    tokens: list[Token] = []


class EngineConfig(Section):
    max_lateness: Duration = 300.0
    delete_cleared_after: Duration = 120.0


class Config(BaseSettings):
    """The whole configuration; `Config()` alone is the embedded defaults (plus env)."""

    model_config = SettingsConfigDict(
        env_prefix="CORRELATOR_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    rules: Path = Path("rules")
    state: StateConfig = StateConfig()
    http: HttpConfig = HttpConfig()
    sources: list[SourceConfig] = []
    sinks: list[SinkConfig] = []
    dead_letter: DeadLetterConfig = DeadLetterConfig(file="var/dead-letter.jsonl")
    auth: AuthConfig | None = None
    engine: EngineConfig = EngineConfig()
    notify: NotifyConfig = NotifyConfig()
    shutdown_timeout: Duration = 10.0
    watch_rules: bool = True  # reload when a rule file changes (besides SIGHUP and /-/reload)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return env_settings, init_settings  # env overrides the file (passed as init values)

    @property
    def source_names(self) -> list[str]:
        return _names(self.sources, ("kafka", "mqtt", "file"))

    @property
    def sink_names(self) -> list[str]:
        return _names(self.sinks, ("kafka", "mqtt"))

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        """Two sources (or sinks) of one name would share their stored offsets (positions)."""
        for section, names in (
            ("sources", ["http", *self.source_names]),
            ("sinks", self.sink_names),
        ):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    reserved = " (the HTTP ingest's)" if name == "http" else ""
                    raise ValueError(f"{section}: the name {name!r}{reserved} is used twice")
                seen.add(name)
        return self

    @model_validator(mode="after")
    def _loopback_without_auth(self) -> Self:
        """Without tokens anyone who can connect could act on alerts: listen locally only."""
        try:
            host, _ = self.http.host_port
        except ValueError as exc:
            raise ValueError(f"http.listen: {exc}") from None
        if (self.auth is None or not self.auth.tokens) and not _is_loopback(host):
            raise ValueError(
                f"http.listen {self.http.listen!r} is not a loopback address and no auth "
                "tokens are configured: add auth.tokens or listen on 127.0.0.1"
            )
        return self


def _names(entries: Sequence[SourceConfig | SinkConfig], kinds: tuple[str, ...]) -> list[str]:
    """Each entry's `name`, else `<kind>-<position>` (as before names existed: a store
    written then keeps its offsets and positions, as long as the list is not reordered)."""
    return [
        entry.name or next(f"{kind}-{i}" for kind in kinds if getattr(entry, kind) is not None)
        for i, entry in enumerate(entries)
    ]


def load_config(path: Path | None) -> Config:
    """The configuration from `path` (None: the embedded defaults), env overrides applied."""
    if path is None:
        return _validate({}, None, "defaults")
    try:
        located = load(read_utf8(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from None
    except YamlError as exc:
        raise ConfigError(f"{path}:{exc.line}:{exc.col}: {exc.message}") from None
    if not isinstance(located.data, dict):
        raise ConfigError(f"{path}:1:1: the configuration must be a mapping of sections")
    return _validate(located.data, located, str(path))


def _validate(data: dict[str, Any], located: Any, where: str) -> Config:
    try:
        return Config(**data)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            key = dotted(loc) or "config"
            prefix = where
            if located is not None and loc and loc[0] in data:
                path = located.resolve(loc)
                line, col = located.position(path, key=error["type"] == "extra_forbidden")
                prefix = f"{where}:{line}:{col}"
            elif loc and loc[0] not in data and located is not None:
                prefix = f"{where} (from the environment)"
            lines.append(f"{prefix}: {key}: {error['msg']}")
        raise ConfigError("\n".join(lines)) from None


def expand_env(text: str) -> str:
    """`${NAME}` → the environment variable's value; an unset one is an error naming it."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set (referenced as ${{{name}}})")
        return os.environ[name]

    return _ENV_REF.sub(value, text)
