"""The drills' section: game days that inject one of the runbook's failures on purpose."""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["DrillSettings"]


class DrillSettings(BaseModel):
    """`jarvis-ir drill <scenario>` (docs/drills.md). Off, and no target allowed, by default."""

    enabled: bool = Field(
        default=False, description="Allow drills (a drill really breaks the configured stack)."
    )
    allowed_targets: list[str] = Field(
        default_factory=list,
        description="Containers a drill may inject a fault into (e.g. a staging stack's).",
    )
    max_escalation_level: int = Field(
        default=1, ge=1, le=5, description="A drill's incident escalates no higher than this."
    )
    window_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="The first incident of the drill's service opened this soon is the drill's.",
    )
    timeout_s: float = Field(
        default=300.0, gt=0, description="How long `jarvis-ir drill` waits for the resolution."
    )
    memory_percent: float = Field(
        default=90.0, gt=0, lt=100, description="memory-pressure: share of the limit held."
    )
    model: str = Field(default="tinyllama", description="ollama-no-models: the model removed.")
