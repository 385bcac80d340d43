"""The remediator's section: guardrails, allowlists, attempt limits, targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from shared.actions import APPROVAL_BY_DEFAULT, ActionName

__all__ = [
    "REQUEST_TTL_S",
    "RemediatorAttemptLimit",
    "RemediatorPostgresTarget",
    "RemediatorRedisTarget",
    "RemediatorSettings",
]

# How long the remediator keeps an action's request (and its answer): an approval must
# come, and the approved action finish, well within it.
REQUEST_TTL_S = 7 * 24 * 3600
_TTL_MARGIN_S = 3600

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
    approval_required: list[str] = Field(
        default_factory=lambda: sorted(a.value for a in APPROVAL_BY_DEFAULT),
        description="Actions that run only after an operator's approval (the runbook's "
        "destructive commands always do): by default everything that stops a container for "
        "good or deletes; not the runbook's ordered restart or resource limits.",
    )
    approval_timeout_s: float = Field(
        default=900.0,
        gt=0,
        description="How long a dangerous action waits for approval (well below the 7 days "
        "its request is kept).",
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

    @field_validator("enabled_actions", "allowed_actions", "approval_required")
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

    @model_validator(mode="after")
    def _approval_within_request_ttl(self) -> RemediatorSettings:
        longest = REQUEST_TTL_S - self.max_action_timeout_s - _TTL_MARGIN_S
        if self.approval_timeout_s > longest:
            raise ValueError(
                f"approval_timeout_s: {self.approval_timeout_s:g} s is too long; at most "
                f"{longest:g} s (a request is kept {REQUEST_TTL_S // 86400} days, and an "
                "approved action may still run max_action_timeout_s after it)"
            )
        return self
