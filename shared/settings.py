"""Configuration: a file (`--config` / `JARVIS_CONFIG`, TOML, YAML or JSON) overridden by
environment variables, validated once at start.

Top-level settings use the names of CONTRACT §4 (`REDIS_URL`, `DATABASE_URL`,
`JARVIS_HTTP_PORT`, …). Each service has its own section; in the environment a nested
field is `JARVIS_<SECTION>__<FIELD>`, e.g. `JARVIS_DETECTOR__PROBE_INTERVAL_S=2`.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from shared.actions import ActionName

__all__ = [
    "AlertPollSettings",
    "ConfigError",
    "ConsumerSettings",
    "ContainerTarget",
    "DetectorSettings",
    "DockerProbeSettings",
    "GrafanaPollSettings",
    "HeartbeatSettings",
    "HostProbeSettings",
    "HttpTargetSettings",
    "LogErrorsProbeSettings",
    "OllamaProbeSettings",
    "PostgresProbeSettings",
    "ProbeSchedule",
    "RedisProbeSettings",
    "Settings",
    "TriageRule",
    "load_settings",
]


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


class ProbeSchedule(BaseModel):
    """When one detector probe runs and how its results are damped (unset: the detector's)."""

    enabled: bool = Field(default=True, description="Run this probe.")
    interval_s: float | None = Field(default=None, gt=0, description="Seconds between runs.")
    timeout_s: float | None = Field(default=None, gt=0, description="Time limit of one run.")
    fire_after: int | None = Field(
        default=None, ge=1, description="Consecutive failures before the alert fires."
    )
    resolve_after: int | None = Field(
        default=None, ge=1, description="Consecutive successes before it resolves."
    )


class HttpTargetSettings(ProbeSchedule):
    """Any HTTP endpoint that must answer with an expected status."""

    name: str = Field(min_length=1, max_length=128, description="Unique probe name.")
    url: str = Field(pattern=r"^https?://", description="URL to GET.")
    service: str = Field(default="http", min_length=1, description="Service named in alerts.")
    expect_status: list[int] = Field(
        default_factory=list, description="Accepted status codes; empty: any 2xx."
    )

    @field_validator("url")
    @classmethod
    def _has_host(cls, value: str) -> str:
        try:
            host = urlsplit(value).hostname
            _ = urlsplit(value).port  # raises ValueError for a bad port
        except ValueError as exc:
            raise ValueError(f"invalid URL: {exc}") from exc
        if not host:
            raise ValueError("URL has no host")
        return value


class OllamaProbeSettings(ProbeSchedule):
    canary_model: str | None = Field(
        default=None, description="Model for the inference canary (POST /api/generate); off."
    )
    canary_prompt: str = Field(default="test", description="Prompt of the canary.")
    canary_max_latency_s: float = Field(
        default=10.0, gt=0, description="Canary answers slower than this are failures."
    )
    canary_timeout_s: float = Field(default=30.0, gt=0, description="Canary time limit.")
    canary_interval_s: float = Field(default=60.0, gt=0, description="Seconds between canaries.")


class PostgresProbeSettings(ProbeSchedule):
    dsn: str = Field(
        default="postgresql://sutazai@127.0.0.1:10000/sutazai",
        description="PostgreSQL to probe (asyncpg DSN; `+asyncpg` is accepted).",
    )
    max_connections_pct: float = Field(
        default=80.0, gt=0, le=100, description="Connections in use / max_connections, %."
    )


class RedisProbeSettings(ProbeSchedule):
    url: str = Field(default="redis://127.0.0.1:10001/0", description="Redis to probe.")
    max_memory_pct: float = Field(
        default=80.0, gt=0, le=100, description="used_memory / maxmemory, %."
    )


class ContainerTarget(BaseModel):
    name: str = Field(min_length=1, description="Container name.")
    service: str | None = Field(
        default=None, description="Service in alerts; unset: the name without `sutazai-`."
    )


def _default_containers() -> list[ContainerTarget]:
    return [
        ContainerTarget(name=n)
        for n in (
            "backend",
            "sutazai-ollama",
            "sutazai-postgres",
            "sutazai-redis",
            "sutazai-neo4j",
            "sutazai-prometheus",
            "sutazai-grafana",
            "sutazai-loki",
        )
    ]


class DockerProbeSettings(ProbeSchedule):
    docker_host: str | None = Field(
        default=None, description="Docker engine URL; unset: DOCKER_HOST or the local socket."
    )
    containers: list[ContainerTarget] = Field(
        default_factory=_default_containers, description="Containers watched (CONTRACT §1)."
    )
    cpu_pct: float = Field(default=80.0, gt=0, description="CPU % (docker stats) threshold.")
    memory_pct: float = Field(default=80.0, gt=0, le=100, description="Memory % threshold.")
    max_restarts: int = Field(
        default=3, ge=1, description="Restarts within restart_window_s that fire an alert."
    )
    restart_window_s: float = Field(default=600.0, gt=0, description="Restart counting window.")
    stats: bool = Field(default=True, description="Read CPU and memory (docker stats).")
    interval_s: float | None = Field(default=10.0, gt=0, description="Seconds between runs.")
    timeout_s: float | None = Field(default=8.0, gt=0, description="Time limit of one run.")


class LogErrorsProbeSettings(ProbeSchedule):
    window_s: float = Field(default=600.0, gt=0, description="Log window (runbook: 10 min).")
    pattern: str = Field(
        default=r"(?i)critical|fatal|error", description="Regex of an error line (runbook grep)."
    )
    threshold: int = Field(
        default=10, ge=1, description="Error lines within the window that fire an alert."
    )
    interval_s: float | None = Field(default=60.0, gt=0, description="Seconds between runs.")
    timeout_s: float | None = Field(default=20.0, gt=0, description="Time limit of one run.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class HostProbeSettings(ProbeSchedule):
    disk_path: str = Field(default="/", description="Filesystem whose usage is checked.")
    disk_pct: float = Field(default=90.0, gt=0, le=100, description="Disk usage threshold, %.")
    memory_pct: float = Field(default=80.0, gt=0, le=100, description="Memory threshold, %.")
    cpu_pct: float = Field(default=80.0, gt=0, le=100, description="CPU threshold, %.")


class AlertPollSettings(ProbeSchedule):
    path: str = Field(
        default="/api/v1/alerts", description="Path of the alerts API on the configured base URL."
    )
    token: str | None = Field(default=None, description="Bearer token (Grafana API key).")


class GrafanaPollSettings(AlertPollSettings):
    path: str = Field(default="/api/alerts", description="Path of Grafana's alerts API.")


class HeartbeatSettings(BaseModel):
    name: str = Field(
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$", description="Sender id."
    )
    period_s: float = Field(gt=0, description="The sender must call at least this often.")
    service: str | None = Field(default=None, description="Service in alerts; unset: name.")


class DetectorSettings(BaseModel):
    """Probes, their thresholds (CONTRACT §1 defaults) and the ingress limits."""

    probe_interval_s: float = Field(default=5.0, gt=0, description="Seconds between probes.")
    probe_timeout_s: float = Field(default=2.0, gt=0, description="Timeout of one probe.")
    probes_enabled: bool = Field(default=True, description="Run the probe loop.")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="Largest request body.")
    fire_after: int = Field(default=2, ge=1, description="Failures in a row before firing.")
    resolve_after: int = Field(default=2, ge=1, description="Successes in a row to resolve.")
    retry_interval_s: float = Field(
        default=1.0, gt=0, description="Re-check delay while a failure is not yet confirmed."
    )
    renotify_s: float = Field(
        default=3600.0, gt=0, description="An unchanged firing alert is re-published this often."
    )
    http_max_connections: int = Field(
        default=1000, ge=1, description="Concurrent HTTP connections of all HTTP probes."
    )
    http_keepalive_connections: int = Field(
        default=16, ge=0, description="Idle HTTP connections kept open for the next probes."
    )
    backend: ProbeSchedule = Field(default_factory=ProbeSchedule)
    ollama: OllamaProbeSettings = Field(default_factory=OllamaProbeSettings)
    postgres: PostgresProbeSettings = Field(default_factory=PostgresProbeSettings)
    redis: RedisProbeSettings = Field(default_factory=RedisProbeSettings)
    docker: DockerProbeSettings = Field(default_factory=DockerProbeSettings)
    logs: LogErrorsProbeSettings = Field(default_factory=LogErrorsProbeSettings)
    host: HostProbeSettings = Field(default_factory=HostProbeSettings)
    prometheus: AlertPollSettings = Field(default_factory=AlertPollSettings)
    grafana: GrafanaPollSettings = Field(default_factory=GrafanaPollSettings)
    http_targets: list[HttpTargetSettings] = Field(
        default_factory=list, description="Extra HTTP endpoints to probe."
    )
    heartbeats: list[HeartbeatSettings] = Field(
        default_factory=list, description="Dead man's switches: senders that must call in."
    )
    pagerduty_routing_keys: list[str] = Field(
        default_factory=list, description="Accepted PagerDuty routing keys; empty: any."
    )
    service_labels: list[str] = Field(
        default_factory=lambda: ["service", "job", "container", "instance"],
        description="Labels of external alerts that name the service, first found wins.",
    )

    @model_validator(mode="after")
    def _unique_names(self) -> DetectorSettings:
        for field_name, names in (
            ("http_targets", [t.name for t in self.http_targets]),
            ("heartbeats", [h.name for h in self.heartbeats]),
            ("docker.containers", [c.name for c in self.docker.containers]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{field_name}: duplicate names {duplicates}")
        return self


class TriageRule(BaseModel):
    """One classification rule: every criterion given must match; the first rule that does wins."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Shown in the reason of the severity.")
    services: list[str] = Field(
        default_factory=list, description="Alert services (canonical names) it applies to."
    )
    checks: list[str] = Field(default_factory=list, description="Alert checks it applies to.")
    external_severities: list[str] = Field(
        default_factory=list, description="Sender severities (lower case) it applies to."
    )
    pattern: str | None = Field(
        default=None,
        description="Regular expression searched (case-insensitive) in summary, description, "
        "check and the alertname label.",
    )
    impact: Literal["low", "medium", "high"] = Field(description="Impact it assigns.")
    urgency: Literal["low", "medium", "high"] = Field(description="Urgency it assigns.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from exc
        return value


# The runbook's "Severity Levels" examples, as rules (impact × urgency → the class's P-level).
_RUNBOOK_RULES: list[dict[str, Any]] = [
    {
        "name": "complete outage",
        "pattern": r"\b(complete|total|full)\s+(system\s+)?outage\b"
        r"|\b(system|everything|all services)\s+(is\s+|are\s+)?(completely\s+)?down\b",
        "impact": "high",
        "urgency": "high",
    },
    {
        "name": "database corruption",
        "pattern": r"\bcorrupt(ed|ion)?\b",
        "impact": "high",
        "urgency": "high",
    },
    {
        "name": "performance degradation",
        "pattern": r"\b(slow|latency|degraded|degradation|performance|high (cpu|memory|load))\b",
        "impact": "medium",
        "urgency": "low",
    },
    {
        "name": "single agent failure",
        "pattern": r"\bagent\b",
        "impact": "medium",
        "urgency": "low",
    },
    {
        "name": "UI glitch",
        "pattern": r"\b(ui|frontend|glitch|cosmetic)\b",
        "impact": "low",
        "urgency": "low",
    },
    {
        "name": "non-critical warning",
        "pattern": r"\bnon-?critical\b",
        "impact": "low",
        "urgency": "low",
    },
    {"name": "backend API down", "services": ["backend"], "impact": "high", "urgency": "low"},
    {"name": "Ollama failure", "services": ["ollama"], "impact": "high", "urgency": "low"},
    {"name": "database failure", "services": ["postgres"], "impact": "high", "urgency": "low"},
]


class TriageSettings(BaseModel):
    default_impact: Literal["low", "medium", "high"] = Field(
        default="medium", description="Impact when nothing says (reason 'unclassified')."
    )
    default_urgency: Literal["low", "medium", "high"] = Field(
        default="medium", description="Urgency when nothing says (reason 'unclassified')."
    )
    rules: list[TriageRule] = Field(
        default_factory=lambda: [TriageRule.model_validate(r) for r in _RUNBOOK_RULES],
        description="Classification rules, first match wins (defaults: the runbook's examples).",
    )
    group_window_s: float = Field(
        default=300.0, gt=0, description="A related alert joins an incident active this recently."
    )
    quiet_period_s: float = Field(
        default=300.0, ge=0, description="All alerts resolved this long → incident resolved."
    )
    resolve_check_s: float = Field(
        default=1.0, gt=0, description="How often quiet periods that ended are looked for."
    )
    multi_system_threshold: int = Field(
        default=3, ge=2, description="Failing services in one incident that raise it one level."
    )
    dependencies: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "backend": ["postgres", "redis", "ollama", "neo4j"],
            "grafana": ["prometheus", "loki"],
        },
        description="Service → the services it depends on (canonical names).",
    )
    service_aliases: dict[str, str] = Field(
        default_factory=lambda: {
            "postgresql": "postgres",
            "database": "postgres",
            "db": "postgres",
            "llm": "ollama",
            "api": "backend",
        },
        description="Other names of a service; a `sutazai-` prefix is always stripped.",
    )
    containers: dict[str, str] = Field(
        default_factory=lambda: {
            "backend": "backend",
            "postgres": "sutazai-postgres",
            "redis": "sutazai-redis",
            "ollama": "sutazai-ollama",
            "neo4j": "sutazai-neo4j",
            "prometheus": "sutazai-prometheus",
            "grafana": "sutazai-grafana",
            "loki": "sutazai-loki",
        },
        description="Service → container name, the targets of playbook steps (CONTRACT §1).",
    )
    playbooks_enabled: bool = Field(default=True, description="Start playbooks for incidents.")
    playbooks_file: Path | None = Field(
        default=None, description="YAML playbooks replacing the shipped ones."
    )


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


NotifierChannel = Literal["slack", "webhook", "email", "pagerduty"]
RemediationOutcome = Literal["failed", "timed_out", "rejected"]
_DEFAULT_REMEDIATION_OUTCOMES: tuple[RemediationOutcome, ...] = ("failed", "timed_out")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_LEVEL_WORDS = {"monitor": None, "executive": 5}


class EscalationCell(BaseModel):
    """One cell of the escalation matrix: after `after_s` seconds open, escalate to `level`."""

    after_s: float = Field(gt=0, description="Seconds since the incident opened.")
    level: int | None = Field(
        ge=1, le=5, description="1 on-call … 4 VP engineering, 5 executive; null: monitor only."
    )


def _parse_row(value: Any) -> Any:
    """Accept the compact form `"15m=2, 1h=3, 4h=4, 24h=executive"` (handy in env vars)."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        return json.loads(value)
    cells: list[dict[str, Any]] = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        after, sep, level = part.partition("=")
        match = _DURATION.match(after)
        if not sep or not match:
            raise ValueError(f"{part!r}: expected <duration>=<level>, e.g. 15m=2 or 24h=executive")
        word = level.strip().lower()
        cells.append(
            {
                "after_s": float(match.group(1)) * _UNIT_S[match.group(2)],
                "level": _LEVEL_WORDS.get(word, word),
            }
        )
    return cells


def _row(text: str) -> list[EscalationCell]:
    return [EscalationCell.model_validate(cell) for cell in _parse_row(text)]


MatrixRow = Annotated[list[EscalationCell], NoDecode, BeforeValidator(_parse_row)]


class EscalationMatrixSettings(BaseModel):
    """Runbook "Escalation Matrix" (CONTRACT §3), one row per severity; P3 has no time steps."""

    p0: MatrixRow = Field(default_factory=lambda: _row("15m=2, 1h=3, 4h=4, 24h=executive"))
    p1: MatrixRow = Field(default_factory=lambda: _row("15m=1, 1h=2, 4h=3, 24h=4"))
    p2: MatrixRow = Field(default_factory=lambda: _row("15m=monitor, 1h=1, 4h=2, 24h=3"))
    p3: MatrixRow = Field(default_factory=list)

    @model_validator(mode="after")
    def _ascending(self) -> EscalationMatrixSettings:
        for name in ("p0", "p1", "p2", "p3"):
            row: list[EscalationCell] = getattr(self, name)
            afters = [cell.after_s for cell in row]
            if afters != sorted(set(afters)):
                raise ValueError(f"{name}: thresholds must be strictly ascending")
        return self


class EscalationLevelSettings(BaseModel):
    """Who a level reaches and over which channels. Unset fields take the runbook's defaults."""

    role: str | None = Field(default=None, description="Runbook role of the level.")
    contacts: list[str] | None = Field(
        default=None, description="E-mail addresses of the level (also listed in the event)."
    )
    channels: list[NotifierChannel] | None = Field(
        default=None, description="Channels used for this level (only configured ones send)."
    )


# Runbook "Escalation Contacts"; executive from "Emergency Contact Information" / "Email Lists".
_LEVEL_DEFAULTS: dict[str, tuple[str, str]] = {
    "level_1": ("on-call engineer", "on-call@company.com"),
    "level_2": ("engineering manager", "eng-manager@company.com"),
    "level_3": ("technical director", "tech-director@company.com"),
    "level_4": ("VP engineering", "vp-eng@company.com"),
    "executive": ("executive", "management@company.com"),
}
_ALL_CHANNELS: list[NotifierChannel] = ["slack", "webhook", "email", "pagerduty"]


class EscalationLevelsSettings(BaseModel):
    level_1: EscalationLevelSettings = Field(default_factory=EscalationLevelSettings)
    level_2: EscalationLevelSettings = Field(default_factory=EscalationLevelSettings)
    level_3: EscalationLevelSettings = Field(default_factory=EscalationLevelSettings)
    level_4: EscalationLevelSettings = Field(default_factory=EscalationLevelSettings)
    executive: EscalationLevelSettings = Field(default_factory=EscalationLevelSettings)

    @model_validator(mode="after")
    def _runbook_defaults(self) -> EscalationLevelsSettings:
        for name, (role, contact) in _LEVEL_DEFAULTS.items():
            level: EscalationLevelSettings = getattr(self, name)
            filled = EscalationLevelSettings(
                role=level.role or role,
                contacts=[contact] if level.contacts is None else level.contacts,
                channels=list(_ALL_CHANNELS) if level.channels is None else level.channels,
            )
            object.__setattr__(self, name, filled)
        return self

    def by_number(self) -> dict[int, EscalationLevelSettings]:
        """Levels 1–5 (5 is the executive level)."""
        return {
            1: self.level_1,
            2: self.level_2,
            3: self.level_3,
            4: self.level_4,
            5: self.executive,
        }


class RetrySettings(BaseModel):
    timeout_s: float = Field(default=5.0, gt=0, le=120, description="Timeout of one delivery try.")
    max_attempts: int = Field(default=4, ge=1, le=20, description="Tries per notification.")
    backoff_initial_s: float = Field(default=0.5, ge=0, description="First wait between tries.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest wait between tries.")


class SlackNotifierSettings(BaseModel):
    webhook_url: str | None = Field(default=None, description="Slack incoming-webhook URL.")


class WebhookNotifierSettings(BaseModel):
    url: str | None = Field(default=None, description="Generic JSON webhook URL.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")


class EmailNotifierSettings(BaseModel):
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: e-mail off.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP port.")
    username: str | None = Field(default=None, description="SMTP AUTH user.")
    password: str | None = Field(default=None, description="SMTP AUTH password.")
    starttls: bool = Field(default=False, description="Upgrade the connection with STARTTLS.")
    ssl: bool = Field(default=False, description="Implicit TLS (SMTPS, usually port 465).")
    sender: str = Field(default="jarvis-responder@localhost", description="From address.")


class PagerDutyNotifierSettings(BaseModel):
    routing_key: str | None = Field(
        default=None, description="Events API v2 integration key; unset: PagerDuty off."
    )
    events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", description="Events API v2 endpoint."
    )
    source: str = Field(default="jarvis-responder", description="payload.source of events.")


class NotifierSettings(BaseModel):
    retry: RetrySettings = Field(default_factory=RetrySettings)
    slack: SlackNotifierSettings = Field(default_factory=SlackNotifierSettings)
    webhook: WebhookNotifierSettings = Field(default_factory=WebhookNotifierSettings)
    email: EmailNotifierSettings = Field(default_factory=EmailNotifierSettings)
    pagerduty: PagerDutyNotifierSettings = Field(default_factory=PagerDutyNotifierSettings)


class EscalatorSettings(BaseModel):
    """The escalation policy (snapshotted per incident when it opens) and the notifiers."""

    tick_s: float = Field(default=1.0, gt=0, description="How often due escalations are fired.")
    matrix: EscalationMatrixSettings = Field(default_factory=EscalationMatrixSettings)
    levels: EscalationLevelsSettings = Field(default_factory=EscalationLevelsSettings)
    ack_extra_levels: int = Field(
        default=0,
        ge=0,
        le=4,
        description="Levels past the acknowledged one that time-based escalation may still "
        "reach after an ack (0: an ack stops time-based escalation).",
    )
    multiple_systems_threshold: int = Field(
        default=2, ge=2, description="Services failing in one incident that escalate at once."
    )
    multiple_systems_level: int = Field(default=2, ge=1, le=5, description="Level it reaches.")
    data_loss_level: int = Field(default=3, ge=1, le=5, description="Level data loss reaches.")
    security_level: int = Field(default=3, ge=1, le=5, description="Level a breach reaches.")
    remediation_failed_level: int = Field(
        default=2, ge=1, le=5, description="Level a failed remediation reaches."
    )
    remediation_outcomes: list[RemediationOutcome] = Field(
        default_factory=lambda: list(_DEFAULT_REMEDIATION_OUTCOMES),
        description="ActionCompleted outcomes that escalate at once (escalate=true always does).",
    )
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)


class RecorderSettings(BaseModel):
    page_size: int = Field(default=50, ge=1, le=1000, description="Default page size.")
    max_body_bytes: int = Field(
        default=65_536, ge=1024, description="Largest body of an operator command."
    )
    dedup_retention_s: float = Field(
        default=7 * 24 * 3600.0,
        ge=3600,
        description="How long ids of counted (storm) alerts are kept to ignore redeliveries.",
    )
    prune_interval_s: float = Field(
        default=600.0, gt=0, description="How often expired dedup ids are deleted."
    )
    stream_poll_s: float = Field(
        default=1.0, gt=0, le=60, description="Live stream: how often the database is polled."
    )


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
