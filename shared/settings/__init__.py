"""Configuration: a file (`--config` / `JARVIS_CONFIG`, TOML, YAML or JSON) overridden by
environment variables, validated once at start.

Top-level settings use the names of CONTRACT §4 (`REDIS_URL`, `DATABASE_URL`,
`JARVIS_HTTP_PORT`, …). Each service has its own section; in the environment a nested
field is `JARVIS_<SECTION>__<FIELD>`, e.g. `JARVIS_DETECTOR__PROBE_INTERVAL_S=2`.
Each section lives in a module of this package named after its service.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import AliasChoices, BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.redis_client import DEFAULT_MASTER, RedisLocation, parse_location
from shared.settings.detector import (
    AlertPollSettings,
    ContainerTarget,
    DetectorSettings,
    DockerProbeSettings,
    GrafanaPollSettings,
    HeartbeatSettings,
    HostProbeSettings,
    HttpTargetSettings,
    LogErrorsProbeSettings,
    OllamaProbeSettings,
    PostgresProbeSettings,
    ProbeSchedule,
    RedisProbeSettings,
)
from shared.settings.drills import DrillSettings
from shared.settings.escalator import (
    EmailNotifierSettings,
    EscalationCell,
    EscalationLevelSettings,
    EscalationLevelsSettings,
    EscalationMatrixSettings,
    EscalatorSettings,
    MatrixRow,
    NotifierChannel,
    NotifierSettings,
    PagerDutyNotifierSettings,
    RemediationOutcome,
    RetrySettings,
    SlackNotifierSettings,
    WebhookNotifierSettings,
)
from shared.settings.oncall import (
    MessageKind,
    PersonSettings,
    RoleScheduleSettings,
    RoleSchedulesSettings,
    RouteSettings,
    RoutesSettings,
    ScheduleSettings,
    SlackInteractivitySettings,
)
from shared.settings.recorder import PostmortemDraftSettings, RecorderSettings, StatusPageSettings
from shared.settings.remediator import (
    RemediatorAttemptLimit,
    RemediatorPostgresTarget,
    RemediatorRedisTarget,
    RemediatorSettings,
)
from shared.settings.triage import TriageRule, TriageSettings

__all__ = [
    "AlertPollSettings",
    "ConfigError",
    "ConsumerSettings",
    "ContainerTarget",
    "DetectorSettings",
    "DockerProbeSettings",
    "DrillSettings",
    "EmailNotifierSettings",
    "EscalationCell",
    "EscalationLevelSettings",
    "EscalationLevelsSettings",
    "EscalationMatrixSettings",
    "EscalatorSettings",
    "GrafanaPollSettings",
    "HeartbeatSettings",
    "HostProbeSettings",
    "HttpTargetSettings",
    "LogErrorsProbeSettings",
    "MatrixRow",
    "MessageKind",
    "NotifierChannel",
    "NotifierSettings",
    "OllamaProbeSettings",
    "PagerDutyNotifierSettings",
    "PersonSettings",
    "PostgresProbeSettings",
    "PostmortemDraftSettings",
    "ProbeSchedule",
    "RecorderSettings",
    "RedisProbeSettings",
    "RemediationOutcome",
    "RemediatorAttemptLimit",
    "RemediatorPostgresTarget",
    "RemediatorRedisTarget",
    "RemediatorSettings",
    "RetrySettings",
    "RoleScheduleSettings",
    "RoleSchedulesSettings",
    "RouteSettings",
    "RoutesSettings",
    "ScheduleSettings",
    "Settings",
    "SlackInteractivitySettings",
    "SlackNotifierSettings",
    "StatusPageSettings",
    "TriageRule",
    "TriageSettings",
    "WebhookNotifierSettings",
    "load_settings",
]


class ConfigError(Exception):
    """A setting is invalid; the message names it."""


class ConsumerSettings(BaseModel):
    """How every service reads its streams (docs/delivery.md)."""

    max_records: int = Field(default=100, ge=1, le=10_000, description="XREADGROUP COUNT.")
    block_ms: int = Field(default=500, ge=1, le=60_000, description="XREADGROUP BLOCK.")
    reclaim_idle_ms: int = Field(
        default=15_000,
        ge=100,
        description="Idle time after which another consumer takes over a pending entry "
        "(a live consumer's entries never go idle: it keeps them claimed).",
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        description="Handler failures of an entry (dependencies up) before it goes to the "
        "dead-letter stream; a dependency that is down (Retryable) never counts.",
    )
    retry_initial_s: float = Field(
        default=0.2, gt=0, description="First wait before retrying while a dependency is down."
    )
    retry_max_s: float = Field(
        default=5.0, gt=0, description="Longest wait between retries while a dependency is down."
    )
    group_check_s: float = Field(
        default=2.0, gt=0, description="How often lost groups are looked for and gauges set."
    )
    stream_maxlen: int = Field(
        default=200_000,
        ge=1000,
        description="Streams longer than this are trimmed, but only by entries every "
        "consumer group has acknowledged; a longer backlog is kept (and alerted on).",
    )
    trim_interval_s: float = Field(default=10.0, gt=0, description="How often streams are trimmed.")
    dead_letter_maxlen: int = Field(
        default=100_000, ge=1000, description="Approximate length jarvis:dead-letter is kept to."
    )

    @model_validator(mode="after")
    def _retry_bounds(self) -> ConsumerSettings:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be at least retry_initial_s")
        return self


class Settings(BaseSettings):
    """Every setting of Jarvis Responder, with the defaults of CONTRACT §1 and §4."""

    model_config = SettingsConfigDict(
        env_prefix="JARVIS_",
        env_nested_delimiter="__",
        populate_by_name=True,
        extra="forbid",
    )

    _config_file: ClassVar[Path | None] = None

    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis server (redis://, rediss:// for TLS, unix://), or its master through "
        "Sentinel (redis+sentinel://[user:pass@]host:port[,…]/master[/db]); unset, and no "
        "REDIS_SENTINELS: `up` starts an embedded redis-server.",
    )
    redis_sentinels: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_SENTINELS", "redis_sentinels"),
        description="Redis Sentinel addresses, host:port,host:port: the services use the master "
        "they name (REDIS_URL then gives only its user, password, database and TLS); or put "
        "everything in REDIS_URL as redis+sentinel://[user:pass@]host:port[,…]/master[/db].",
    )
    redis_sentinel_master: str = Field(
        default=DEFAULT_MASTER,
        validation_alias=AliasChoices("REDIS_SENTINEL_MASTER", "redis_sentinel_master"),
        description="The master's name in the sentinels' configuration (with REDIS_SENTINELS).",
    )
    redis_sentinel_username: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_SENTINEL_USERNAME", "redis_sentinel_username"),
        description="ACL user the sentinels want, if any (their own, not the master's).",
    )
    redis_sentinel_password: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_SENTINEL_PASSWORD", "redis_sentinel_password"),
        description="Password the sentinels want (their requirepass), if any; the master's is "
        "in REDIS_URL.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="Recorder database; unset: SQLite under the data directory.",
    )
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(default=10300, ge=0, le=65535, description="Port of the HTTP server.")
    http_port_span: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Replicas sharing one network (host networking): serve on the first free "
        "port of http_port … http_port + span - 1, written to <data_dir>/http.port.",
    )
    data_dir: Path = Field(default=Path("var"), description="Embedded Redis, SQLite, artifacts.")
    embedded_redis_port: int = Field(
        default=10379, ge=0, le=65535, description="Port of the embedded Redis (0: any free)."
    )
    api_token: str | None = Field(
        default=None,
        description="Operator's bearer token: every write (ingest included) wants it; reads too "
        "when the server listens beyond loopback.",
    )
    http_tls_certfile: Path | None = Field(
        default=None, description="PEM certificate (chain): the HTTP server serves HTTPS."
    )
    http_tls_keyfile: Path | None = Field(
        default=None, description="PEM private key of http_tls_certfile."
    )
    http_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the HTTP server answers to (DNS rebinding); IP addresses always; "
        "empty: localhost and the bind host; '*': any.",
    )
    http_protect_reads: bool | None = Field(
        default=None,
        description="Reads need the token too; unset: when a token is set and the server "
        "listens beyond loopback.",
    )
    http_open_paths: list[str] = Field(
        default_factory=list,
        description="Paths readable without a token when reads are protected, e.g. "
        '["/health", "/metrics"] for probes and Prometheus.',
    )
    approval_key: str | None = Field(
        default=None,
        description="Key the recorder signs approvals with and the remediator checks; unset: "
        "generated under the data directory.",
    )
    envelope_key: str | None = Field(
        default=None,
        description="Key the detector seals the alerts it stamped with (triage, recorder and "
        "remediator check it); unset: generated under the data directory.",
    )
    log_level: str = Field(default="INFO", description="Python logging level.")

    backend_url: str = Field(default="http://127.0.0.1:10010", description="Jarvis backend.")
    ollama_url: str = Field(default="http://127.0.0.1:10104", description="Ollama API.")
    prometheus_url: str = Field(default="http://127.0.0.1:10200", description="Prometheus.")
    grafana_url: str = Field(default="http://127.0.0.1:10201", description="Grafana.")

    consumer: ConsumerSettings = Field(default_factory=ConsumerSettings)
    detector: DetectorSettings = Field(default_factory=DetectorSettings)
    triage: TriageSettings = Field(default_factory=TriageSettings)
    remediator: RemediatorSettings = Field(default_factory=RemediatorSettings)
    escalator: EscalatorSettings = Field(default_factory=EscalatorSettings)
    recorder: RecorderSettings = Field(default_factory=RecorderSettings)
    drills: DrillSettings = Field(default_factory=DrillSettings)

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if (self.http_tls_certfile is None) != (self.http_tls_keyfile is None):
            raise ValueError("http_tls_certfile and http_tls_keyfile: set both or neither")
        for name in ("http_tls_certfile", "http_tls_keyfile"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file {path}")
        if self.detector.ingest_tokens and not self.api_token:
            raise ValueError(
                "detector.ingest_tokens: JARVIS_API_TOKEN must be set too (it protects the "
                "operator commands the integration tokens do not open)"
            )
        _ = self.redis_location  # raises ValueError naming a bad Redis setting
        for path in self.http_open_paths:
            if not path.startswith("/"):
                raise ValueError(f"http_open_paths: {path!r} is not a path (starts with /)")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls, cls._config_file))

    @property
    def redis_location(self) -> RedisLocation | None:
        """Where the event bus's Redis is (`shared.redis_client`); None: `up` embeds one."""
        return parse_location(
            self.redis_url,
            self.redis_sentinels,
            self.redis_sentinel_master,
            self.redis_sentinel_username,
            self.redis_sentinel_password,
        )

    @property
    def sqlalchemy_url(self) -> str:
        """The recorder's database URL, SQLite under the data directory by default."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'recorder.sqlite3').resolve()}"


class _FileSource(PydanticBaseSettingsSource):
    """Reads the configuration file; environment variables take precedence over it."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self._data = _read_config_file(path) if path else {}

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from exc
    try:
        if path.suffix in {".yaml", ".yml"}:
            data = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping")
    return data


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from file + environment (+ explicit overrides, e.g. `--port`).

    Raises ConfigError naming every invalid setting.
    """
    path = config or os.environ.get("JARVIS_CONFIG")
    Settings._config_file = Path(path) if path else None
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
    finally:
        Settings._config_file = None
