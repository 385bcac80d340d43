"""Carries out one validated action through the ports and says what happened.

Called only after the guardrails said EXECUTE; the time limit, the attempt limit and
the bookkeeping are the handler's. Artifacts go into one directory per incident under
`data_dir/incidents/` (the runbook's investigation directory).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from services.remediator.artifacts import write_private
from services.remediator.params import (
    VERIFY_CHECKS,
    DiagnosticsParams,
    LogsParams,
    OllamaPullParams,
    OrderedRestartParams,
    PruneParams,
    StartParams,
    StopParams,
    TimeoutParams,
    UpdateLimitsParams,
    VerifyParams,
)
from services.remediator.ports import (
    ActionFailed,
    ContainerEngine,
    DataStore,
    DiagnosticsPort,
    ModelServer,
    PostgresPort,
    VerifierPort,
)
from services.remediator.readiness import Readiness
from services.remediator.recovery import ordered_restart
from shared.actions import ActionName, Condition
from shared.events import ActionRequested
from shared.settings import Settings

__all__ = ["Executor", "Ports", "Result", "incident_dir"]

_VERIFY_RETRY_S = 2.0  # the runbook's polling interval


@dataclass(frozen=True)
class Result:
    detail: str
    artifacts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Ports:
    engine: ContainerEngine
    postgres: PostgresPort
    redis: DataStore
    ollama: ModelServer
    verifier: VerifierPort
    diagnostics: DiagnosticsPort


def incident_dir(data_dir: Path, request: ActionRequested) -> Path:
    """`data_dir/incidents/<incident id>` (ids were checked to be safe names)."""
    base = (data_dir / "incidents").resolve()
    name = request.incident_id or f"action-{request.action_id}"
    path = (base / name).resolve()
    if path.parent != base:
        raise ActionFailed(f"incident directory {name!r} escapes {base}")
    return path


class Executor:
    def __init__(self, settings: Settings, ports: Ports) -> None:
        self._settings = settings
        self._s = settings.remediator
        self._p = ports
        self._ready = Readiness(settings, ports.engine, ports.postgres, ports.redis)

    async def condition(self, condition: Condition) -> tuple[bool, str]:
        """Whether a step's `when:` holds now, and what was found."""
        return await self._ready.holds(condition)

    async def already_done(
        self, action: ActionName, params: object, targets: tuple[str, ...]
    ) -> str | None:
        """What is already so, when running `action` would change nothing (limits that are
        already those asked for); None when it has to run."""
        if action is not ActionName.DOCKER_UPDATE_LIMITS or not targets:
            return None
        assert isinstance(params, UpdateLimitsParams)
        host = (await self._p.engine.inspect(targets[0]))["HostConfig"]
        wanted = {
            "Memory": params.memory_bytes if params.memory is not None else host["Memory"],
            "MemorySwap": params.swap_bytes if params.memory is not None else host["MemorySwap"],
            "NanoCpus": params.nano_cpus if params.nano_cpus is not None else host["NanoCpus"],
        }
        if any(host.get(key) != value for key, value in wanted.items()):
            return None
        return (
            f"limits of {targets[0]} already memory {host['Memory']} B, swap "
            f"{host['MemorySwap']} B, cpus {host['NanoCpus'] / 1e9:g}: nothing changed"
        )

    async def run(
        self,
        request: ActionRequested,
        action: ActionName,
        params: object,
        targets: tuple[str, ...],
        now: datetime,
        timeout_s: float,
    ) -> Result:
        """Raises ActionFailed when the action did not achieve its goal."""
        p, s = self._p, self._s
        target = targets[0] if targets else ""
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        folder = incident_dir(self._settings.data_dir, request)
        short = request.action_id[:8]

        # A restart is done when the container serves again, not when its process started.
        if action is ActionName.DOCKER_RESTART:
            assert isinstance(params, StopParams)
            done = await p.engine.restart(target, _grace(params, s.stop_timeout_s))
            return Result(f"{done}; {await self._ready.wait(target, params.ready_timeout_s)}")
        if action is ActionName.DOCKER_STOP:
            assert isinstance(params, StopParams)
            return Result(await p.engine.stop(target, _grace(params, s.stop_timeout_s)))
        if action is ActionName.DOCKER_START:
            assert isinstance(params, StartParams)
            done = await p.engine.start(target)
            return Result(f"{done}; {await self._ready.wait(target, params.ready_timeout_s)}")
        if action is ActionName.DOCKER_RECREATE:
            assert isinstance(params, StopParams)
            done = await p.engine.recreate(target, _grace(params, s.stop_timeout_s))
            return Result(f"{done}; {await self._ready.wait(target, params.ready_timeout_s)}")
        if action is ActionName.DOCKER_UPDATE_LIMITS:
            assert isinstance(params, UpdateLimitsParams)
            memory = params.memory_bytes if params.memory is not None else None
            swap = params.swap_bytes if params.memory is not None else None
            detail = await p.engine.update_limits(target, memory, swap, params.nano_cpus)
            return Result(detail)
        if action is ActionName.DOCKER_STATS:
            if target:
                return Result((await p.engine.stats(target)).line())

            # No target: every Jarvis container, as `docker stats --no-stream` (runbook),
            # side by side (the engine takes a second or two to sample each).
            async def line(name: str) -> str:
                try:
                    return (await p.engine.stats(name)).line()
                except ActionFailed as exc:
                    return f"{name}: {exc}"

            rows = await asyncio.gather(*(line(n) for n in s.diagnostics_containers))
            return Result("; ".join(rows))
        if action is ActionName.DOCKER_LOGS:
            assert isinstance(params, LogsParams)
            logs = await p.engine.logs(target, params.since_s, params.tail)
            path = _write(folder / f"{target}_logs_{stamp}_{short}.txt", logs)
            lines = logs.count(b"\n")
            return Result(f"{lines} log lines of {target} (last {params.since_s} s)", [str(path)])
        if action is ActionName.POSTGRES_BACKUP:
            dest = folder / f"{target}_emergency_backup_{stamp}_{short}.sql"
            path = await p.postgres.backup(target, dest, timeout_s)
            size = path.stat().st_size
            return Result(f"pg_dump of {target}: {size} bytes", [str(path)])
        if action is ActionName.POSTGRES_WAIT_READY:
            assert isinstance(params, TimeoutParams)
            waited = await p.postgres.wait_ready(target, params.timeout_s)
            return Result(f"{target} ready after {waited:.1f} s")
        if action is ActionName.POSTGRES_CONNECTIONS:
            return Result(f"{target}: {await p.postgres.connections(target)} connections")
        if action is ActionName.REDIS_BGSAVE:
            assert isinstance(params, TimeoutParams)
            before, after = await p.redis.bgsave(target, min(params.timeout_s, timeout_s))
            return Result(f"BGSAVE on {target}: LASTSAVE {before} → {after}")
        if action is ActionName.REDIS_FLUSHDB:
            return Result(f"FLUSHDB on {target}: {await p.redis.flushdb(target)} keys removed")
        if action is ActionName.OLLAMA_PULL:
            assert isinstance(params, OllamaPullParams)
            return Result(await p.ollama.pull(params.model, timeout_s))
        if action is ActionName.DIAGNOSTICS_COLLECT:
            assert isinstance(params, DiagnosticsParams)
            containers = params.containers or s.diagnostics_containers
            since = params.since_s or s.diagnostics_logs_since_s
            written = await p.diagnostics.collect(
                folder / f"diagnostics_{stamp}_{short}", containers, since
            )
            return Result(
                f"evidence bundle: {len(written)} files in {written[0].parent}",
                [str(w) for w in written],
            )
        if action is ActionName.VERIFY:
            assert isinstance(params, VerifyParams)
            # A stack that was just repaired may need a moment: retry within the deadline.
            checks = list(params.checks or VERIFY_CHECKS)
            started, attempts = time.monotonic(), 0
            while True:
                attempts += 1
                results = await p.verifier.verify(checks)
                passed = all(r.ok for r in results)
                if passed or time.monotonic() - started + _VERIFY_RETRY_S > params.deadline_s:
                    break
                await asyncio.sleep(_VERIFY_RETRY_S)
            report = [{"check": r.name, "ok": r.ok, "detail": r.detail} for r in results]
            path = _write(
                folder / f"verification_{stamp}_{short}.json", json.dumps(report, indent=2).encode()
            )
            summary = "; ".join(
                f"{r.name} {'ok' if r.ok else 'FAILED'}: {r.detail}" for r in results
            )
            tries = f"{attempts} attempt{'s' if attempts > 1 else ''} in "
            tries += f"{time.monotonic() - started:.1f} s"
            if not passed:
                raise ActionFailed(f"verification failed ({tries}): {summary}", [str(path)])
            return Result(f"verification passed ({tries}): {summary}", [str(path)])
        if action is ActionName.RECOVERY_ORDERED_RESTART:
            assert isinstance(params, OrderedRestartParams)
            detail = await ordered_restart(
                p.engine,
                p.postgres,
                backend=targets[0],
                database=targets[1],
                ready_timeout_s=params.ready_timeout_s,
                stop_timeout_s=s.stop_timeout_s,
            )
            backend = await self._ready.wait(targets[0], params.ready_timeout_s)
            return Result(f"{detail}; {targets[0]} {backend}")
        if action is ActionName.DOCKER_SYSTEM_PRUNE:
            assert isinstance(params, PruneParams)
            return Result(await p.engine.system_prune(params.label))
        if action is ActionName.DOCKER_VOLUME_PRUNE:
            assert isinstance(params, PruneParams)
            return Result(await p.engine.volume_prune(params.label))
        raise ActionFailed(f"{action.value} has no executor")  # pragma: no cover - exhaustive


def _grace(params: StopParams, default: int) -> int:
    return params.stop_timeout_s if params.stop_timeout_s is not None else default


def _write(path: Path, data: bytes) -> Path:
    return write_private(path, data)
