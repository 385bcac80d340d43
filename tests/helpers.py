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
from shared.runtime import Runtime, Service, build_app, create_runtime
from shared.settings import Settings

__all__ = ["eventually", "read_stream", "running"]


async def read_stream(redis: Redis, key: str) -> list[dict[str, Any]]:
    """Every entry of a stream, `__data__` decoded as JSON; flat fields as strings."""
    out: list[dict[str, Any]] = []
    for entry_id, fields in await redis.xrange(key):
        decoded = {k.decode(): v.decode() for k, v in fields.items()}
        data = json.loads(decoded["__data__"]) if "__data__" in decoded else decoded
        data["_entry_id"] = entry_id.decode()
        out.append(data)
    return out


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
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
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
