"""Recorder's composition root: every stream into the timeline store, the API, the page."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from prometheus_client import Counter
from sqlalchemy.exc import InterfaceError, OperationalError

from services.escalator.store import EscalatorStore
from services.recorder.api import make_read_router
from services.recorder.approvals import make_approvals_router
from services.recorder.commands import make_command_router
from services.recorder.db import checkpoint, migrate
from services.recorder.live import Notifier, make_live_router
from services.recorder.queries import Reader
from services.recorder.schemas import NextEscalation
from services.recorder.security import bearer_guard, check_exposure
from services.recorder.silences import make_silence_router
from services.recorder.store import Outcome, TimelineStore
from shared.consumer import Retryable
from shared.events import Event
from shared.runtime import Runtime, Service
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
                await checkpoint(store.engine)
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
    escalator = EscalatorStore(runtime.redis, settings.consumer.stream_maxlen)

    async def next_escalations(incident_ids: list[str]) -> dict[str, NextEscalation]:
        found = await escalator.next_due(incident_ids)
        return {i: NextEscalation(level=lv, due_at=at) for i, (lv, at) in found.items()}

    guard = bearer_guard(settings.api_token)
    router = APIRouter()
    router.include_router(make_read_router(reader, config.page_size, next_escalations))
    router.include_router(make_approvals_router(reader, settings.remediator.approval_timeout_s))
    router.include_router(
        make_command_router(
            store=store,
            reader=reader,
            bus=runtime.bus(GROUP),
            guard=guard,
            max_body_bytes=config.max_body_bytes,
            on_recorded=notifier.notify,
        )
    )
    router.include_router(
        make_silence_router(
            silences=SilenceStore(runtime.redis, settings.consumer.stream_maxlen),
            store=store,
            reader=reader,
            guard=guard,
            max_body_bytes=config.max_body_bytes,
            aliases=settings.triage.service_aliases,
            on_recorded=notifier.notify,
        )
    )
    router.include_router(
        make_live_router(reader, notifier, config.stream_poll_s, next_escalations)
    )
    return Service(
        name=GROUP,
        router=router,
        consumers=[
            runtime.consume(spec, GROUP, batch_handler=on_events, max_records=config.batch_size)
            for spec in ALL_STREAMS
        ],
        startup=[start],
        background=[prune_loop, checkpoint_loop],
        shutdown=[store.close],
        health=health,
    )
