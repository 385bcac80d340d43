"""Recorder's composition root: every stream into the timeline store, the API, the page."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import httpx
from fastapi import APIRouter
from prometheus_client import Counter
from sqlalchemy.exc import InterfaceError, OperationalError

from services.escalator.store import EscalatorStore
from services.recorder.api import make_read_router
from services.recorder.approvals import make_approvals_router
from services.recorder.commands import Commands, make_command_router
from services.recorder.db import checkpoint, migrate
from services.recorder.draft import Drafter
from services.recorder.drills_api import make_drill_router
from services.recorder.live import Notifier, make_live_router
from services.recorder.oncall_api import make_oncall_router
from services.recorder.queries import Reader
from services.recorder.schemas import NextEscalation
from services.recorder.silences import make_silence_router
from services.recorder.slack import make_slack_router
from services.recorder.status_api import (
    StatusServer,
    make_status_read_router,
    make_status_write_router,
)
from services.recorder.store import Outcome, TimelineStore
from shared.access import check_exposure, operator_guard
from shared.consumer import Retryable
from shared.events import Event
from shared.overrides import OverrideStore
from shared.runtime import Hook, Runtime, Service
from shared.silence_store import SilenceStore
from shared.streams import ALL_STREAMS

__all__ = ["GROUP", "build"]

GROUP = "recorder"
log = logging.getLogger(__name__)

RECORDED = Counter(
    "jarvis_recorder_events_total",
    "Events the recorder handled: stored on the timeline, counted (alert storm) or duplicate.",
    ["outcome"],
)


def build(runtime: Runtime) -> Service:
    settings = runtime.settings
    config = settings.recorder
    check_exposure(settings)  # raises ConfigError before anything listens
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = TimelineStore(settings.sqlalchemy_url)
    reader = Reader(store.sessions)
    notifier = Notifier()

    async def on_events(events: list[Event]) -> None:
        """A batch in one transaction; committed before the consumer acknowledges it."""
        try:
            outcomes = await store.record_many(events)
        except (OperationalError, InterfaceError, OSError) as exc:
            # The database is unreachable or busy: the entries stay pending and are retried,
            # however long the outage, without counting towards the dead-letter limit.
            raise Retryable(f"database unavailable: {exc}") from exc
        for outcome in outcomes:
            RECORDED.labels(outcome.value).inc()
        if any(outcome is not Outcome.DUPLICATE for outcome in outcomes):
            notifier.notify()

    async def start() -> None:
        await migrate(store.engine)

    async def checkpoint_loop() -> None:
        while True:
            await asyncio.sleep(config.checkpoint_interval_s)
            try:
                await checkpoint(store.engine, config.wal_truncate_bytes)
            except (OperationalError, OSError) as exc:
                log.warning("SQLite checkpoint failed (retried): %s", exc)

    async def prune_loop() -> None:
        retention = timedelta(seconds=config.dedup_retention_s)
        while True:
            removed = await store.prune_processed(retention)
            if removed:
                log.info("forgot %d expired dedup ids", removed)
            await asyncio.sleep(config.prune_interval_s)

    async def health() -> dict[str, Any]:
        try:
            await store.ping()
        except Exception as exc:
            return {"status": "error", "database": f"error: {exc}"}
        return {"status": "ok", "database": store.engine.dialect.name}

    # The escalator's timers are the truth about the next escalation (its policy snapshot,
    # acknowledgements, steps fired): read them rather than recompute them.
    escalator = EscalatorStore(runtime.redis)

    async def next_escalations(incident_ids: list[str]) -> dict[str, NextEscalation]:
        found = await escalator.next_due(incident_ids)
        return {i: NextEscalation(level=lv, due_at=at) for i, (lv, at) in found.items()}

    drafter: Drafter | None = None
    if config.postmortem_draft.enabled:
        ollama = httpx.AsyncClient(follow_redirects=False)
        drafter = Drafter(config.postmortem_draft, settings.ollama_url, ollama)
        shutdown_first: list[Hook] = [ollama.aclose]
    else:
        shutdown_first = []
    router = APIRouter()
    router.include_router(make_read_router(reader, config.page_size, next_escalations, drafter))
    router.include_router(make_approvals_router(reader, settings.remediator.approval_timeout_s))
    commands = Commands(
        store=store,
        reader=reader,
        bus=runtime.bus(GROUP),
        signer=runtime.approval_signer,
        on_recorded=notifier.notify,
    )
    # Operators' writes: their token and JSON bodies (shared/access.py).
    guard = operator_guard(runtime.access)
    router.include_router(
        make_command_router(commands=commands, guard=guard, max_body_bytes=config.max_body_bytes)
    )
    router.include_router(
        make_oncall_router(
            settings=settings.escalator,
            overrides=OverrideStore(runtime.redis),
            commands=commands,
            clock=runtime.clock,
            guard=guard,
            max_body_bytes=config.max_body_bytes,
        )
    )
    router.include_router(
        make_silence_router(
            silences=SilenceStore(runtime.redis),
            store=store,
            reader=reader,
            guard=guard,
            max_body_bytes=config.max_body_bytes,
            aliases=settings.triage.service_aliases,
            on_recorded=notifier.notify,
        )
    )
    router.include_router(
        make_slack_router(
            settings=settings.escalator,
            commands=commands,
            redis=runtime.redis,
            clock=runtime.clock,
            max_body_bytes=config.max_body_bytes,
        )
    )
    page = config.status_page
    stack = list(settings.triage.containers)
    router.include_router(make_status_read_router(reader, page, stack, runtime.clock))
    router.include_router(make_status_write_router(commands, guard, config.max_body_bytes))
    router.include_router(
        make_drill_router(settings=settings, commands=commands, reader=reader, guard=guard)
    )
    router.include_router(
        make_live_router(
            reader, notifier, config.stream_poll_s, next_escalations, config.stream_max_clients
        )
    )
    startup: list[Hook] = [start]
    shutdown: list[Hook] = [*shutdown_first, store.close]
    if page.port:
        # The page alone on its own port: exposed publicly while the API stays internal.
        alone = StatusServer(
            make_status_read_router(reader, page, stack, runtime.clock), page.host, page.port
        )
        startup.append(alone.start)
        shutdown.insert(0, alone.stop)
    return Service(
        name=GROUP,
        router=router,
        consumers=[
            runtime.consume(spec, GROUP, batch_handler=on_events, max_records=config.batch_size)
            for spec in ALL_STREAMS
        ],
        startup=startup,
        background=[prune_loop, checkpoint_loop],
        shutdown=shutdown,
        health=health,
    )
