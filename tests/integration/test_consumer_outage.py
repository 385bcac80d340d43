"""A dependency down for longer than the whole retry budget dead-letters nothing and logs
once (issue 13 case 1); a slow handler's entry is never run a second time (case 6)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from shared.consumer import Retryable
from shared.events import AlertRaised, Event
from shared.runtime import Runtime, Service
from shared.settings import Settings
from shared.streams import ALERTS, DEAD_LETTER
from tests.helpers import eventually, running, stream_id

pytestmark = pytest.mark.integration

OUTAGE_S = 6.0


def _gauge(name: str, group: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"group": group, "stream": ALERTS.key})


async def _nothing_pending(redis: Redis, group: str) -> bool:
    return int((await redis.xpending(ALERTS.key, group))["pending"]) == 0


async def test_an_outage_longer_than_the_retry_budget_dead_letters_nothing(
    redis: Redis, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    group = f"outage-{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    down_until = loop.time() + OUTAGE_S
    stored: dict[str, int] = {}

    def build(runtime: Runtime) -> Service:
        async def store(events: list[Event]) -> None:
            if loop.time() < down_until:
                raise Retryable("database unavailable: connection refused")
            for event in events:
                stored[event.event_id] = stored.get(event.event_id, 0) + 1

        return Service(name=group, consumers=[runtime.consume(ALERTS, group, batch_handler=store)])

    # Two failures allowed, a reclaim every 100 ms: the old budget (10 × 2 deliveries)
    # was spent in about 3 s of outage.
    settings = make_settings(
        consumer={"max_deliveries": 2, "reclaim_idle_ms": 100, "group_check_s": 0.1}
    )
    alerts = [AlertRaised(service=f"svc-{i}") for i in range(20)]
    caplog.set_level(logging.WARNING)
    backlog_seen, age_seen = 0.0, 0.0
    async with running(settings, [build]):
        for alert in alerts:  # alerts keep arriving during the outage
            await redis.xadd(ALERTS.key, {"__data__": alert.to_json()})
            await asyncio.sleep(0.1)
        while loop.time() < down_until:  # what an operator sees meanwhile
            backlog_seen = max(backlog_seen, _gauge("jarvis_consumer_backlog", group) or 0)
            age = _gauge("jarvis_consumer_oldest_pending_age_seconds", group)
            age_seen = max(age_seen, age or 0)
            await asyncio.sleep(0.1)
        await eventually(lambda: _nothing_pending(redis, group), timeout=20)
        backlog_after = await _backlog_once_drained(group)
    assert await redis.xlen(DEAD_LETTER) == 0
    # Written as another system writes them: their ids are claims, namespaced (issue 18).
    assert set(stored) == {stream_id(a.event_id) for a in alerts}
    assert set(stored.values()) == {1}
    # The backlog and its age were there to see during the outage, and went back to 0.
    assert backlog_seen == len(alerts)
    assert age_seen >= 1.0
    assert backlog_after == 0
    # One line when the outage began, one when it ended: not one per entry per retry.
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("shared")
    ]
    assert 1 <= len(lines) <= 2, lines


async def test_a_slow_handler_is_run_once_by_one_replica(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    runs: list[str] = []

    def build(runtime: Runtime) -> Service:
        async def slow(event: Event) -> None:
            runs.append(event.event_id)
            await asyncio.sleep(2.0)  # seven times the reclaim idle time

        return Service(name="slow", consumers=[runtime.consume(ALERTS, "slow", slow)])

    settings = make_settings(consumer={"reclaim_idle_ms": 300})
    async with running(settings, [build]), running(settings, [build]):  # two replicas
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="backend").to_json()})
        await eventually(lambda: _true(len(runs) >= 1))
        await eventually(lambda: _nothing_pending(redis, "slow"), timeout=15)
        await asyncio.sleep(0.6)  # room for a second run to show up
    assert len(runs) == 1


async def _true(value: bool) -> bool:
    return value


async def _backlog_once_drained(group: str) -> float | None:
    """The backlog gauge, given a few refreshes to come down to 0."""
    for _ in range(50):
        value = _gauge("jarvis_consumer_backlog", group)
        if value == 0:
            break
        await asyncio.sleep(0.1)
    return value
