"""Parameters of each action, validated before anything runs.

Event data never reaches a shell: names that end up in argv, file names or Docker API
paths are checked against strict patterns here, and unknown parameters are refused so
that a typo never silently runs with defaults. Errors name the field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.actions import ActionName

__all__ = [
    "CONTAINER_NAME",
    "SAFE_ID",
    "ActionParams",
    "DiagnosticsParams",
    "InvalidParams",
    "LogsParams",
    "OllamaPullParams",
    "OrderedRestartParams",
    "PruneParams",
    "StartParams",
    "StopParams",
    "TimeoutParams",
    "UpdateLimitsParams",
    "VerifyParams",
    "parse_bytes",
    "parse_params",
    "valid_container_name",
]

# Docker's own rule for container names, with a length cap.
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
# Incident and action ids become directory names: no separators, no leading dot.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")
_LABEL_FILTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}(=[A-Za-z0-9_.:/-]{0,256})?$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_MIN_MEMORY = 6 * 1024**2  # the engine refuses less than 6 MiB

VERIFY_CHECKS = ("backend_health", "chat", "database", "redis", "metrics")


class InvalidParams(ValueError):
    """The parameters of an action are invalid; the message names the field."""


def valid_container_name(value: str) -> str:
    if not CONTAINER_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid container name")
    return value


def parse_bytes(value: str | int) -> int:
    """'2g' → 2147483648, like `docker update --memory`."""
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a size such as 512m or 2g")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


ContainerName = Annotated[str, AfterValidator(valid_container_name)]


class ActionParams(BaseModel):
    """Parameters every action accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fingerprint: str | None = Field(
        default=None, max_length=256, description="The alert the action answers."
    )


class NoParams(ActionParams):
    pass


class StartParams(ActionParams):
    ready_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=600,
        description="Wait this long for the container to serve again (runbook Phase 5: 60 s).",
    )


class StopParams(StartParams):
    stop_timeout_s: int | None = Field(
        default=None, ge=0, le=600, description="Grace before the container is killed."
    )


class UpdateLimitsParams(ActionParams):
    memory: str | int | None = Field(default=None, description="Memory limit, e.g. 2g.")
    memory_swap: str | int | None = Field(
        default=None, description="Memory + swap limit; default: same as memory; -1: unlimited."
    )
    cpus: float | None = Field(default=None, gt=0, le=256, description="CPUs, e.g. 1.0.")

    @field_validator("memory", "memory_swap")
    @classmethod
    def _size(cls, value: str | int | None) -> str | int | None:
        if value is not None and value not in (-1, "-1"):
            parse_bytes(value)
        return value

    @model_validator(mode="after")
    def _check(self) -> UpdateLimitsParams:
        if self.memory is None and self.cpus is None:
            raise ValueError("give memory and/or cpus")
        if self.memory is not None and self.memory_bytes < _MIN_MEMORY:
            raise ValueError("memory: at least 6m")
        if self.memory_swap is not None and self.memory is None:
            raise ValueError("memory_swap needs memory")
        self.swap_bytes  # noqa: B018 - validates memory_swap
        return self

    @property
    def memory_bytes(self) -> int:
        return parse_bytes(self.memory) if self.memory is not None else 0

    @property
    def swap_bytes(self) -> int:
        if self.memory_swap in (-1, "-1"):
            return -1
        if self.memory_swap is None:
            return self.memory_bytes
        swap = parse_bytes(self.memory_swap)
        if swap < self.memory_bytes:
            raise ValueError("memory_swap must be at least memory")
        return swap

    @property
    def nano_cpus(self) -> int | None:
        return round(self.cpus * 1e9) if self.cpus is not None else None


class LogsParams(ActionParams):
    since_s: int = Field(default=600, ge=1, le=7 * 24 * 3600, description="How far back.")
    tail: int = Field(default=200, ge=1, le=100_000, description="At most this many lines.")


class TimeoutParams(ActionParams):
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="How long to wait.")


class OllamaPullParams(ActionParams):
    model: str = Field(default="tinyllama", description="Model to pull.")

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not _MODEL_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a model name")
        return value


class DiagnosticsParams(ActionParams):
    since_s: int | None = Field(default=None, ge=1, le=7 * 24 * 3600, description="Log window.")
    containers: list[ContainerName] | None = Field(
        default=None, max_length=64, description="Containers whose logs to collect."
    )


class VerifyParams(ActionParams):
    checks: list[Literal["backend_health", "chat", "database", "redis", "metrics"]] | None = Field(
        default=None, description="Run only these checks (default: all of Phase 6)."
    )
    deadline_s: float = Field(
        default=60.0,
        ge=0,
        le=600,
        description="Retry failing checks every 2 s for this long before failing.",
    )


class OrderedRestartParams(ActionParams):
    backend: ContainerName | None = Field(default=None, description="The backend container.")
    database: ContainerName | None = Field(default=None, description="The PostgreSQL container.")
    ready_timeout_s: float = Field(default=60.0, gt=0, le=600, description="Wait for PostgreSQL.")


class PruneParams(ActionParams):
    label: str | None = Field(
        default=None, description="Only prune objects with this label (key or key=value)."
    )

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and not _LABEL_FILTER.fullmatch(value):
            raise ValueError(f"{value!r} is not a label filter")
        return value


_PARAMS: dict[ActionName, type[ActionParams]] = {
    ActionName.DOCKER_RESTART: StopParams,
    ActionName.DOCKER_STOP: StopParams,
    ActionName.DOCKER_START: StartParams,
    ActionName.DOCKER_RECREATE: StopParams,
    ActionName.DOCKER_UPDATE_LIMITS: UpdateLimitsParams,
    ActionName.DOCKER_STATS: NoParams,
    ActionName.DOCKER_LOGS: LogsParams,
    ActionName.POSTGRES_BACKUP: NoParams,
    ActionName.POSTGRES_WAIT_READY: TimeoutParams,
    ActionName.POSTGRES_CONNECTIONS: NoParams,
    ActionName.REDIS_BGSAVE: TimeoutParams,
    ActionName.OLLAMA_PULL: OllamaPullParams,
    ActionName.DIAGNOSTICS_COLLECT: DiagnosticsParams,
    ActionName.VERIFY: VerifyParams,
    ActionName.RECOVERY_ORDERED_RESTART: OrderedRestartParams,
    ActionName.DOCKER_SYSTEM_PRUNE: PruneParams,
    ActionName.DOCKER_VOLUME_PRUNE: PruneParams,
    ActionName.REDIS_FLUSHDB: NoParams,
}


def parse_params(action: ActionName, params: dict[str, Any]) -> ActionParams:
    """Validate `params` for `action`; InvalidParams names every bad field."""
    try:
        return _PARAMS[action].model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"params.{'.'.join(str(p) for p in err['loc']) or '(all)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidParams(problems) from exc
