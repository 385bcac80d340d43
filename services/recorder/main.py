"""Recorder's composition root: every stream into the timeline store, and the API."""

from __future__ import annotations

from typing import Any

from services.recorder.api import make_router
from services.recorder.store import TimelineStore
from shared.events import Event
from shared.runtime import Runtime, Service
from shared.streams import ALL_STREAMS

__all__ = ["GROUP", "build"]

GROUP = "recorder"


def build(runtime: Runtime) -> Service:
    settings = runtime.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = TimelineStore(settings.sqlalchemy_url)

    async def on_event(event: Event) -> None:
        await store.record(event)

    async def health() -> dict[str, Any]:
        try:
            await store.ping()
        except Exception as exc:
            return {"status": "error", "database": f"error: {exc}"}
        return {"status": "ok", "database": store.engine.dialect.name}

    return Service(
        name=GROUP,
        router=make_router(store, settings.recorder.page_size),
        consumers=[runtime.consume(spec, GROUP, on_event) for spec in ALL_STREAMS],
        startup=[store.create_schema],
        shutdown=[store.close],
        health=health,
    )
