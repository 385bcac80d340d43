"""Docker probes (docker SDK): each configured container's state, health, restarts, CPU % and
memory % (`docker stats`; the runbook's threshold is 80 %), and error lines in its logs over
the last 10 minutes (runbook triage step 4). The SDK is synchronous: calls run in threads."""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import DockerException, NotFound

from services.detector.probes import Outcome, ProbeResult, Schedule
from shared.events import Level

__all__ = [
    "ContainerLimits",
    "DockerProbe",
    "LogErrorsProbe",
    "RestartWindow",
    "count_error_lines",
    "cpu_percent",
    "memory_percent",
    "service_for_container",
]


def service_for_container(name: str, service: str | None = None) -> str:
    """`sutazai-postgres` → `postgres`, unless configured otherwise."""
    return service or name.removeprefix("sutazai-")


def cpu_percent(stats: dict[str, Any]) -> float | None:
    """CPU % the way `docker stats` computes it (100 % = one core); None without a delta."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    try:
        cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system_delta = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    cores = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or [1])
    if system_delta <= 0 or cpu_delta < 0:
        return None
    return float(100.0 * cpu_delta / system_delta * cores)


def memory_percent(stats: dict[str, Any]) -> float | None:
    """Memory % as `docker stats` shows it: usage minus page cache, over the limit."""
    memory = stats.get("memory_stats") or {}
    usage, limit = memory.get("usage"), memory.get("limit")
    if not usage or not limit:
        return None
    extra = memory.get("stats") or {}
    cache = extra.get("inactive_file", extra.get("total_inactive_file", 0))
    return float(100.0 * max(usage - cache, 0) / limit)


def count_error_lines(text: str, pattern: re.Pattern[str]) -> tuple[int, str]:
    """How many lines match, and the last one (for the alert's detail)."""
    count, last = 0, ""
    for line in text.splitlines():
        if pattern.search(line):
            count += 1
            last = line
    return count, last.strip()[:300]


class RestartWindow:
    """Restarts of one container within a sliding window, from its RestartCount samples."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def observe(self, count: int, now: float) -> int:
        if self._samples and count < self._samples[-1][1]:
            self._samples.clear()  # the container was re-created: its counter restarted
        self._samples.append((now, count))
        while len(self._samples) > 1 and self._samples[1][0] <= now - self.window_s:
            self._samples.popleft()
        return count - self._samples[0][1]


@dataclass(frozen=True)
class ContainerLimits:
    cpu_pct: float
    memory_pct: float
    max_restarts: int
    restart_window_s: float
    stats: bool = True


ClientFactory = Callable[[], docker.DockerClient]


def client_factory(docker_host: str | None, timeout: float) -> ClientFactory:
    def make() -> docker.DockerClient:
        if docker_host:
            return docker.DockerClient(base_url=docker_host, timeout=max(int(timeout), 1))
        return docker.from_env(timeout=max(int(timeout), 1))

    return make


class _DockerBase:
    """Shared by the Docker probes: a lazily created client and a thread pool of their own."""

    service = "docker"
    check = "engine"

    def __init__(self, make_client: ClientFactory, containers: Sequence[tuple[str, str]]) -> None:
        self._make_client = make_client
        self._client: docker.DockerClient | None = None
        self._containers = list(containers)  # (container name, service)
        self._pool = ThreadPoolExecutor(
            max_workers=min(max(len(self._containers), 1), 16), thread_name_prefix="docker-probe"
        )

    def _docker(self) -> docker.DockerClient:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    async def _each(self, work: Callable[[str, str], list[ProbeResult]]) -> Outcome:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._pool, lambda: self._docker().ping())
        except (DockerException, OSError) as exc:
            self._client = None
            return Outcome([ProbeResult("docker", "engine", False, f"Docker engine: {exc}")])
        batches = await asyncio.gather(
            *(loop.run_in_executor(self._pool, work, name, svc) for name, svc in self._containers),
            return_exceptions=True,
        )
        results = [ProbeResult("docker", "engine", True, "reachable")]
        for (name, svc), batch in zip(self._containers, batches, strict=True):
            if isinstance(batch, BaseException):
                results.append(
                    ProbeResult(
                        svc, "container", False, f"{name}: {batch}", labels={"container": name}
                    )
                )
            else:
                results.extend(batch)
        return Outcome(results)

    async def close(self) -> None:
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
        self._pool.shutdown(wait=False, cancel_futures=True)


class DockerProbe(_DockerBase):
    """State, health, restarts, CPU % and memory % of each configured container."""

    def __init__(
        self,
        make_client: ClientFactory,
        containers: Sequence[tuple[str, str]],
        limits: ContainerLimits,
        schedule: Schedule,
    ) -> None:
        super().__init__(make_client, containers)
        self.name = "docker"
        self.schedule = schedule
        self._limits = limits
        self._restarts = {name: RestartWindow(limits.restart_window_s) for name, _ in containers}

    async def run(self) -> Outcome:
        return await self._each(self._inspect)

    def _inspect(self, name: str, service: str) -> list[ProbeResult]:
        labels = {"container": name}

        def result(
            check: str, ok: bool, detail: str, impact: Level, value: float | None = None
        ) -> ProbeResult:
            detail = f"{name}: {detail}"
            return ProbeResult(service, check, ok, detail, impact, Level.LOW, value, labels)

        try:
            container = self._docker().containers.get(name)
        except NotFound:
            return [result("container-state", False, "container not found", Level.HIGH)]
        state: dict[str, Any] = container.attrs.get("State") or {}
        status = str(state.get("Status", "unknown"))
        detail = f"status {status}"
        if status != "running":
            detail += f" (exit code {state.get('ExitCode')})"
        out = [result("container-state", status == "running", detail, Level.HIGH)]
        health = (state.get("Health") or {}).get("Status")
        if health:
            last = ((state.get("Health") or {}).get("Log") or [{}])[-1]
            why = str(last.get("Output", "")).strip()[:200]
            out.append(
                result(
                    "container-health",
                    health != "unhealthy",
                    f"health {health}" + (f": {why}" if health == "unhealthy" and why else ""),
                    Level.MEDIUM,
                )
            )
        count = int(container.attrs.get("RestartCount") or 0)
        recent = self._restarts[name].observe(count, time.monotonic())
        out.append(
            result(
                "container-restarts",
                recent < self._limits.max_restarts,
                f"{recent} restarts in the last {self._limits.restart_window_s:g}s"
                f" (threshold {self._limits.max_restarts})",
                Level.MEDIUM,
                recent,
            )
        )
        if status == "running" and self._limits.stats:
            stats = container.stats(stream=False)
            for check, value, limit in (
                ("container-cpu", cpu_percent(stats), self._limits.cpu_pct),
                ("container-memory", memory_percent(stats), self._limits.memory_pct),
            ):
                if value is not None:
                    what = check.removeprefix("container-")
                    out.append(
                        result(
                            check,
                            value < limit,
                            f"{what} {value:.1f}% (threshold {limit:g}%)",
                            Level.MEDIUM,
                            round(value, 2),
                        )
                    )
        return out


class LogErrorsProbe(_DockerBase):
    """Error lines in each container's logs over the window, against a threshold."""

    def __init__(
        self,
        make_client: ClientFactory,
        containers: Sequence[tuple[str, str]],
        pattern: str,
        window_s: float,
        threshold: int,
        schedule: Schedule,
    ) -> None:
        super().__init__(make_client, containers)
        self.name = "log-errors"
        self.schedule = schedule
        self._pattern = re.compile(pattern)
        self._window_s = window_s
        self._threshold = threshold

    async def run(self) -> Outcome:
        return await self._each(self._count)

    def _count(self, name: str, service: str) -> list[ProbeResult]:
        try:
            container = self._docker().containers.get(name)
        except NotFound:
            return []  # the Docker probe reports a missing container
        since = int(time.time() - self._window_s)
        text = container.logs(stdout=True, stderr=True, since=since).decode("utf-8", "replace")
        count, last = count_error_lines(text, self._pattern)
        detail = f"{name}: {count} error lines in the last {self._window_s:g}s"
        detail += f" (threshold {self._threshold})" + (f"; last: {last}" if last else "")
        return [
            ProbeResult(
                service,
                "log-errors",
                count < self._threshold,
                detail,
                Level.MEDIUM,
                Level.LOW,
                count,
                {"container": name},
            )
        ]
