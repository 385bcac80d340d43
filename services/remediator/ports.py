"""The remediator's side effects as small interfaces, one real implementation each.

docker_engine.DockerEngine, postgres.PostgresOps, redis_ops.RedisOps, ollama.OllamaClient,
verification.Verifier and diagnostics.Diagnostics implement these. The executor only
sees the interfaces, so its dispatch can be unit-tested with fakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "ActionFailed",
    "CheckResult",
    "ContainerEngine",
    "ContainerStats",
    "DataStore",
    "DiagnosticsPort",
    "ModelServer",
    "PostgresPort",
    "VerifierPort",
]


class ActionFailed(Exception):
    """The action ran and did not achieve its goal; the message says why."""

    def __init__(self, message: str, artifacts: list[str] | None = None) -> None:
        super().__init__(message)
        self.artifacts = artifacts or []


@dataclass(frozen=True)
class ContainerStats:
    name: str
    cpu_percent: float
    memory_bytes: int
    memory_limit_bytes: int

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory_bytes / self.memory_limit_bytes if self.memory_limit_bytes else 0

    def line(self) -> str:
        return (
            f"{self.name}: CPU {self.cpu_percent:.1f} %, memory "
            f"{self.memory_bytes / 2**20:.1f} MiB / {self.memory_limit_bytes / 2**20:.1f} MiB "
            f"({self.memory_percent:.1f} %)"
        )


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    data: dict[str, object] = field(default_factory=dict)


class ContainerEngine(Protocol):
    """The Docker engine (runbook Phases 3–5)."""

    async def restart(self, name: str, stop_timeout_s: int) -> str: ...
    async def stop(self, name: str, stop_timeout_s: int) -> str: ...
    async def start(self, name: str) -> str: ...
    async def recreate(self, name: str, stop_timeout_s: int) -> str: ...
    async def update_limits(
        self, name: str, memory: int | None, memory_swap: int | None, nano_cpus: int | None
    ) -> str: ...
    async def inspect(self, name: str) -> dict[str, Any]: ...
    async def stats(self, name: str) -> ContainerStats: ...
    async def wait_healthy(self, name: str, timeout_s: float) -> str: ...
    async def logs(self, name: str, since_s: int, tail: int | None) -> bytes: ...
    async def status(self, names: list[str]) -> list[dict[str, object]]: ...
    async def disk_usage(self) -> str: ...
    async def system_prune(self, label: str | None) -> str: ...
    async def volume_prune(self, label: str | None) -> str: ...
    async def exec_to_file(
        self, name: str, argv: list[str], dest: Path | None, timeout_s: float
    ) -> tuple[int, bytes]: ...


class PostgresPort(Protocol):
    """One PostgreSQL target, by name (settings.remediator.postgres_targets)."""

    async def backup(self, target: str, dest: Path, timeout_s: float) -> Path: ...
    async def wait_ready(self, target: str, timeout_s: float) -> float: ...
    async def connections(self, target: str) -> int: ...
    async def select_one(self, target: str) -> str: ...


class DataStore(Protocol):
    """One Redis target, by name (settings.remediator.redis_targets)."""

    async def bgsave(self, target: str, timeout_s: float) -> tuple[int, int]: ...
    async def flushdb(self, target: str) -> int: ...
    async def ping(self, target: str) -> bool: ...


class ModelServer(Protocol):
    """Ollama's HTTP API."""

    async def pull(self, model: str, timeout_s: float) -> str: ...
    async def models(self) -> list[str]: ...


class VerifierPort(Protocol):
    """Runbook Phase 6."""

    async def verify(self, checks: list[str]) -> list[CheckResult]: ...


class DiagnosticsPort(Protocol):
    """Runbook Phase 4."""

    async def collect(self, directory: Path, containers: list[str], since_s: int) -> list[Path]: ...
