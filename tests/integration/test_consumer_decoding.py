"""Entries the consumer cannot take as they are: no event_id (issue 13 case 10), nested too
deeply for the JSON decoder (case 11; over HTTP: test_detector_deep_json.py), no
recognisable event_type on a stream that carries several types (case 12)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.events import AlertRaised, Event
from shared.runtime import Runtime, Service
from shared.settings import Settings
from shared.streams import ALERTS, DEAD_LETTER, INCIDENTS, StreamSpec
from tests.helpers import eventually, read_stream, running

pytestmark = pytest.mark.integration

DEEP = "[" * 100_000 + "]" * 100_000  # far past Python's recursion limit


def _collector(spec: StreamSpec, seen: list[Event], fail_first: int = 0) -> Callable[..., Any]:
    left = {"failures": fail_first}

    def build(runtime: Runtime) -> Service:
        async def handle(event: Event) -> None:
            seen.append(event)
            if left["failures"] > 0:  # handled, then lost before the ack (a crash)
                left["failures"] -= 1
                raise RuntimeError("crashed before acknowledging")

        return Service(name="collect", consumers=[runtime.consume(spec, "test", handle)])

    return build


async def _true(value: bool) -> bool:
    return value


async def _dead(redis: Redis, count: int) -> list[dict[str, Any]] | None:
    entries = await read_stream(redis, DEAD_LETTER)
    return entries if len(entries) >= count else None


async def _nothing_pending(redis: Redis, stream: str) -> bool:
    return int((await redis.xpending(stream, "test"))["pending"]) == 0


async def test_an_entry_without_event_id_is_the_same_event_at_every_delivery(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    seen: list[Event] = []
    settings = make_settings(consumer={"reclaim_idle_ms": 200})
    async with running(settings, [_collector(ALERTS, seen, fail_first=1)]):
        await redis.xadd(ALERTS.key, {"service": "ollama", "check": "models"})
        await eventually(lambda: _true(len(seen) == 2), timeout=15)
        await eventually(lambda: _nothing_pending(redis, ALERTS.key))
    first, again = seen
    assert first.event_id == again.event_id  # the redelivery is recognised as the same event
    assert first == again


async def test_an_entry_nested_too_deeply_is_dead_lettered_at_once(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    seen: list[Event] = []
    async with running(make_settings(), [_collector(ALERTS, seen)]):
        in_data = (await redis.xadd(ALERTS.key, {"__data__": DEEP})).decode()
        in_field = (await redis.xadd(ALERTS.key, {"service": "x", "labels": DEEP})).decode()
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="after").to_json()})
        await eventually(lambda: _true(len(seen) == 1))  # the stream is not blocked
        dead = await eventually(lambda: _dead(redis, 2))
        await eventually(lambda: _nothing_pending(redis, ALERTS.key))
    assert [d["entry_id"] for d in dead] == [in_data, in_field]
    assert all("nested too deeply" in d["reason"] for d in dead)
    assert all(d["deliveries"] == "1" for d in dead)


async def test_an_incident_entry_without_event_type_is_invalid(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    seen: list[Event] = []
    async with running(make_settings(), [_collector(INCIDENTS, seen)]):
        garbage = (await redis.xadd(INCIDENTS.key, {"foo": "bar"})).decode()
        untyped = (
            await redis.xadd(INCIDENTS.key, {"__data__": json.dumps({"incident_id": "inc-1"})})
        ).decode()
        await redis.xadd(
            INCIDENTS.key,
            {"event_type": "IncidentAcknowledged", "incident_id": "inc-1", "by": "ops"},
        )
        await eventually(lambda: _true(len(seen) == 1))
        dead = await eventually(lambda: _dead(redis, 2))
        await eventually(lambda: _nothing_pending(redis, INCIDENTS.key))
    assert seen[0].event_type == "IncidentAcknowledged"
    assert [d["entry_id"] for d in dead] == [garbage, untyped]
    assert all("event_type: missing" in d["reason"] for d in dead)
