"""The detector's section: probes, their schedules and thresholds, ingress limits."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "INTEGRATION_NAME",
    "RESERVED_INTEGRATIONS",
    "AlertPollSettings",
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
]


# An integration's name prefixes its fingerprints: no colon, so the prefix is unambiguous.
INTEGRATION_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# Names the server gives itself: the operator's token, XADD writers, no token configured.
RESERVED_INTEGRATIONS = frozenset({"default", "stream", "anonymous"})


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
    prober_lease_ttl_s: float | None = Field(
        default=None,
        gt=0,
        description="TTL of the Redis lease that elects the one replica that probes "
        "(renewed every third of it; failover within 4/3 of it); unset: probe_interval_s.",
    )
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
    ingest_tokens: dict[str, str] = Field(
        default_factory=dict,
        description="Named bearer tokens of integrations (name → token): the alerts a token "
        "sends carry its name, and only it can resolve them.",
    )
    pagerduty_routing_keys: list[str] = Field(
        default_factory=list,
        description="Accepted PagerDuty routing keys; empty: any while no token is set, "
        "none (PagerDuty refused) once JARVIS_API_TOKEN is set.",
    )
    known_services: list[str] = Field(
        default_factory=list,
        description="Services besides the stack's (triage.containers, dependencies, probes) "
        "that alerts may name without counting against max_unknown_services.",
    )
    max_unknown_services: int = Field(
        default=100,
        ge=0,
        description="Distinct unknown services accepted per unknown_services_window_s; "
        "alerts naming more get 429.",
    )
    unknown_services_window_s: float = Field(
        default=86400.0, gt=0, description="Window of max_unknown_services."
    )
    service_labels: list[str] = Field(
        default_factory=lambda: ["service", "job", "container", "instance"],
        description="Labels of external alerts that name the service, first found wins.",
    )

    @field_validator("ingest_tokens")
    @classmethod
    def _integration_names(cls, tokens: dict[str, str]) -> dict[str, str]:
        for name, token in tokens.items():
            reserved = name in RESERVED_INTEGRATIONS or name.startswith("pagerduty-")
            if not INTEGRATION_NAME.fullmatch(name) or reserved:
                raise ValueError(
                    f"{name!r}: a name is 1-64 of a-z 0-9 _ . - (not "
                    f"{', '.join(sorted(RESERVED_INTEGRATIONS))} nor pagerduty-*)"
                )
            if len(token) < 16:
                raise ValueError(f"{name}: a token has at least 16 characters")
        if len(set(tokens.values())) != len(tokens):
            raise ValueError("two integrations share one token")
        return tokens

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
