"""Remediator's composition root: ActionRequested in, exactly one final ActionCompleted out.

Wires the real adapters (Docker engine, PostgreSQL, Redis targets, Ollama, Phase 6
verification, Phase 4 diagnostics) behind their ports, and reads three streams through
the `remediator` group: requests, approvals (jarvis:incidents) and alerts (to notice an
ineffective fix). A background sweep answers approvals that timed out. Nothing connects
at build time; the Docker client connects on first use.
"""

from __future__ import annotations

from typing import Any

from services.remediator.diagnostics import Diagnostics
from services.remediator.docker_engine import DockerEngine
from services.remediator.executor import Executor, Ports
from services.remediator.handlers import GROUP, Remediator
from services.remediator.ollama import OllamaClient
from services.remediator.postgres import PostgresOps
from services.remediator.redis_ops import RedisOps
from services.remediator.state import RemediatorState
from services.remediator.verification import Verifier
from shared.runtime import Runtime, Service
from shared.silence_store import SilenceWatch
from shared.streams import ACTIONS_REQUESTED, ALERTS, INCIDENTS

__all__ = ["GROUP", "build", "build_ports"]


def build_ports(runtime: Runtime) -> Ports:
    settings = runtime.settings
    engine = DockerEngine(settings.remediator.docker_url)
    postgres = PostgresOps(settings.remediator, engine)
    redis_ops = RedisOps(settings.remediator)
    return Ports(
        engine=engine,
        postgres=postgres,
        redis=redis_ops,
        ollama=OllamaClient(settings.ollama_url),
        verifier=Verifier(settings, postgres, redis_ops),
        diagnostics=Diagnostics(settings, engine),
    )


def build(runtime: Runtime, ports: Ports | None = None) -> Service:
    settings = runtime.settings
    ports = ports or build_ports(runtime)
    remediator = Remediator(
        settings=settings,
        state=RemediatorState(runtime.redis),
        executor=Executor(settings, ports),
        bus=runtime.bus(GROUP),
        clock=runtime.clock,
        silences=SilenceWatch(runtime.redis),
        approvals=runtime.approval_signer,
    )
    state = RemediatorState(runtime.redis)

    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "enabled": settings.remediator.enabled,
            "enabled_actions": settings.remediator.enabled_actions,
            "awaiting_approval": await state.pending_count(),
        }

    async def close() -> None:
        if isinstance(ports.engine, DockerEngine):
            ports.engine.close()

    return Service(
        name=GROUP,
        consumers=[
            runtime.consume(ACTIONS_REQUESTED, GROUP, remediator.on_action),
            runtime.consume(INCIDENTS, GROUP, remediator.on_incident_event),
            runtime.consume(ALERTS, GROUP, remediator.on_alert),
        ],
        background=[remediator.sweep_forever],
        shutdown=[close],
        health=health,
    )
