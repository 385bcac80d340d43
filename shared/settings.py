"""Configuration: a file (`--config` / `JARVIS_CONFIG`, TOML, YAML or JSON) overridden by
environment variables, validated once at start.

Top-level settings use the names of CONTRACT §4 (`REDIS_URL`, `DATABASE_URL`,
`JARVIS_HTTP_PORT`, …). Each service has its own section; in the environment a nested
field is `JARVIS_<SECTION>__<FIELD>`, e.g. `JARVIS_DETECTOR__PROBE_INTERVAL_S=2`.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar

import yaml
from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from shared.actions import ActionName

__all__ = ["ConfigError", "ConsumerSettings", "Settings", "load_settings"]


class ConfigError(Exception):
    """A setting is invalid; the message names it."""


class ConsumerSettings(BaseModel):
    """How every service reads its streams."""

    max_records: int = Field(default=100, ge=1, le=10_000, description="XREADGROUP COUNT.")
    block_ms: int = Field(default=500, ge=1, le=60_000, description="XREADGROUP BLOCK.")
    reclaim_idle_ms: int = Field(
        default=15_000, ge=100, description="Idle time before a pending entry is reclaimed."
    )
    max_deliveries: int = Field(
        default=5, ge=1, description="Deliveries before an entry goes to the dead-letter stream."
    )
    group_check_s: float = Field(
        default=2.0, gt=0, description="How often lost consumer groups are looked for."
    )
    stream_maxlen: int = Field(
        default=200_000, ge=1000, description="Approximate length each stream is trimmed to."
    )


class DetectorSettings(BaseModel):
    probe_interval_s: float = Field(default=5.0, gt=0, description="Seconds between probes.")
    probe_timeout_s: float = Field(default=2.0, gt=0, description="Timeout of one probe.")
    probes_enabled: bool = Field(default=True, description="Run the probe loop.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body.")


class TriageSettings(BaseModel):
    default_impact: str = Field(default="medium", description="Impact when nothing says.")
    default_urgency: str = Field(default="medium", description="Urgency when nothing says.")


_JARVIS_CONTAINERS = [
    "backend",
    "sutazai-ollama",
    "sutazai-postgres",
    "sutazai-redis",
    "sutazai-neo4j",
    "sutazai-prometheus",
    "sutazai-grafana",
    "sutazai-loki",
]


class RemediatorAttemptLimit(BaseModel):
    """At most `max_attempts` runs of one action on one target within `window_s`."""

    max_attempts: int = Field(default=3, ge=1, description="Runs allowed in the window.")
    window_s: float = Field(default=1800.0, gt=0, description="Length of the window in seconds.")


class RemediatorPostgresTarget(BaseModel):
    """How to reach one PostgreSQL target: `docker exec` in the container named by the
    target (the runbook's way), or the local pg_dump/asyncpg against `dsn` when it is set."""

    dsn: str | None = Field(
        default=None, description="postgresql://user@host:port/db; unset: docker exec."
    )
    user: str = Field(default="sutazai", description="Database user (docker exec mode).")
    database: str = Field(default="sutazai", description="Database name (docker exec mode).")


class RemediatorRedisTarget(BaseModel):
    """How to reach one Redis target (the Jarvis Redis, not the event bus)."""

    url: str = Field(default="redis://127.0.0.1:10001/0", description="redis:// URL.")


class RemediatorSettings(BaseModel):
    """Guardrails and targets of the remediator (docs/remediator.md)."""

    enabled: bool = Field(
        default=False, description="Off (dry-run) until switched on deliberately."
    )
    enabled_actions: list[str] = Field(
        default_factory=list,
        description="Per-action switch: only these run for real when enabled ('*': all).",
    )
    allowed_actions: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Allowlist of action names ('*': the whole vocabulary); others: rejected.",
    )
    allowed_targets: list[str] = Field(
        default_factory=lambda: list(_JARVIS_CONTAINERS),
        description="Allowlist of targets (container names); others: rejected.",
    )
    attempt_limit: RemediatorAttemptLimit = Field(
        default_factory=RemediatorAttemptLimit,
        description="Default attempt limit per action and target.",
    )
    attempt_limits: dict[str, RemediatorAttemptLimit] = Field(
        default_factory=dict, description="Attempt limits of single actions (by name)."
    )
    ineffective_window_s: float = Field(
        default=1800.0,
        gt=0,
        description="An alert firing again this soon after a fix marks the fix ineffective.",
    )
    ineffective_grace_s: float = Field(
        default=10.0, ge=0, description="Alerts this soon after a fix were already in flight."
    )
    block_s: float = Field(
        default=1800.0, gt=0, description="How long automatic action stays stopped on a target."
    )
    approval_timeout_s: float = Field(
        default=900.0, gt=0, description="How long a dangerous action waits for approval."
    )
    action_timeouts_s: dict[str, float] = Field(
        default_factory=dict, description="Time limit of single actions (caps the request's)."
    )
    max_action_timeout_s: float = Field(
        default=900.0, gt=0, description="No action runs longer than this."
    )
    tick_s: float = Field(default=1.0, gt=0, description="How often approval timeouts are checked.")
    docker_url: str | None = Field(
        default=None, description="Docker engine URL; unset: DOCKER_HOST or the local socket."
    )
    stop_timeout_s: int = Field(default=10, ge=0, le=600, description="Grace for stop/restart.")
    backend_container: str = Field(default="backend", description="The backend's container.")
    database_container: str = Field(
        default="sutazai-postgres", description="PostgreSQL's container (ordered recovery)."
    )
    redis_container: str = Field(default="sutazai-redis", description="Redis' container.")
    ollama_container: str = Field(default="sutazai-ollama", description="Ollama's container.")
    postgres_targets: dict[str, RemediatorPostgresTarget] = Field(
        default_factory=lambda: {"sutazai-postgres": RemediatorPostgresTarget()},
        description="PostgreSQL targets by name.",
    )
    redis_targets: dict[str, RemediatorRedisTarget] = Field(
        default_factory=lambda: {"sutazai-redis": RemediatorRedisTarget()},
        description="Redis targets by name.",
    )
    service_containers: dict[str, str] = Field(
        default_factory=lambda: {
            "backend": "backend",
            "ollama": "sutazai-ollama",
            "postgres": "sutazai-postgres",
            "postgresql": "sutazai-postgres",
            "database": "sutazai-postgres",
            "redis": "sutazai-redis",
            "neo4j": "sutazai-neo4j",
            "prometheus": "sutazai-prometheus",
            "grafana": "sutazai-grafana",
            "loki": "sutazai-loki",
        },
        description="Alert service → container, to tie alerts to fixed targets.",
    )
    diagnostics_containers: list[str] = Field(
        default_factory=lambda: list(_JARVIS_CONTAINERS[:4]),
        description="Containers whose logs go into the evidence bundle (runbook Phase 4).",
    )
    diagnostics_logs_since_s: int = Field(
        default=7200, ge=1, description="How far back logs are collected (runbook: 2 h)."
    )
    pg_bin_dir: Path | None = Field(
        default=None, description="Folder of pg_dump (DSN mode); unset: PATH, then Debian's."
    )

    @field_validator("enabled_actions", "allowed_actions")
    @classmethod
    def _known_actions(cls, names: list[str]) -> list[str]:
        known = {a.value for a in ActionName}
        unknown = [n for n in names if n != "*" and n not in known]
        if unknown:
            raise ValueError(f"unknown action(s) {unknown}; known: {sorted(known)}")
        return names

    @field_validator("attempt_limits", "action_timeouts_s")
    @classmethod
    def _known_action_keys(cls, mapping: dict[str, Any]) -> dict[str, Any]:
        known = {a.value for a in ActionName}
        unknown = [n for n in mapping if n not in known]
        if unknown:
            raise ValueError(f"unknown action(s) {unknown}")
        return mapping


class EscalatorSettings(BaseModel):
    tick_s: float = Field(default=1.0, gt=0, description="How often due escalations are fired.")


class RecorderSettings(BaseModel):
    page_size: int = Field(default=50, ge=1, le=1000, description="Default page size.")


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
        description="Redis server; unset: `up` starts an embedded redis-server.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="Recorder database; unset: SQLite under the data directory.",
    )
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(default=10300, ge=0, le=65535, description="Port of the HTTP server.")
    data_dir: Path = Field(default=Path("var"), description="Embedded Redis, SQLite, artifacts.")
    embedded_redis_port: int = Field(
        default=10379, ge=0, le=65535, description="Port of the embedded Redis (0: any free)."
    )
    api_token: str | None = Field(default=None, description="Bearer token for write endpoints.")
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
