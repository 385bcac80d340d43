"""Triage's section: classification rules (the runbook's examples), grouping, playbooks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

__all__ = ["TriageRule", "TriageSettings"]


class TriageRule(BaseModel):
    """One classification rule: every criterion given must match; the first rule that does wins."""

    model_config = ConfigDict(extra="forbid")

    # No control characters: triage publishes it in SeverityAssigned's reason without
    # validating the event again (shared.events.trusted_json), as events name things.
    name: str = Field(
        min_length=1,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Shown in the reason of the severity (no control characters).",
    )
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
    stale_after_s: float = Field(
        default=86400.0,
        gt=0,
        description="An open incident without a firing alert for this long is closed as stale "
        "(its senders fell silent); its fingerprints are freed.",
    )
    stale_check_s: float = Field(
        default=60.0, gt=0, description="How often stale incidents are looked for."
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
