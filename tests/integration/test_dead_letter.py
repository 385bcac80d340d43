"""Dead-lettering is per consumer group, and the record is written or nothing is (issue 13
case 7): each group that gives up on an entry leaves its own record, and a record that
could not be written leaves the entry pending to be recorded later, never acknowledged
without one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from shared.events import AlertRaised, Event
from shared.runtime import Runtime, Service
from shared.settings import Settings
from shared.streams import ALERTS, DEAD_LETTER
from tests.helpers import eventually, read_stream, running

pytestmark = pytest.mark.integration


def _always_failing(*groups: str) -> Callable[[Runtime], Service]:
    def build(runtime: Runtime) -> Service:
        async def fail(event: Event) -> None:
            raise RuntimeError("handler bug")

        return Service(
            name="failing", consumers=[runtime.consume(ALERTS, group, fail) for group in groups]
        )

    return build


async def _dead(redis: Redis, count: int) -> list[dict[str, Any]] | None:
    entries = await read_stream(redis, DEAD_LETTER)
    return entries if len(entries) >= count else None


async def _nothing_pending(redis: Redis, *groups: str) -> bool:
    for group in groups:
        if int((await redis.xpending(ALERTS.key, group))["pending"]):
            return False
    return True


async def test_each_group_that_gives_up_on_an_entry_records_it(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(consumer={"max_deliveries": 1, "reclaim_idle_ms": 200})
    async with running(settings, [_always_failing("first", "second")]):
        entry_id = (
            await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="backend").to_json()})
        ).decode()
        dead = await eventually(lambda: _dead(redis, 2), timeout=15)
        await eventually(lambda: _nothing_pending(redis, "first", "second"))
        await asyncio.sleep(0.5)  # room for a third record to show up
    dead = await read_stream(redis, DEAD_LETTER)
    assert sorted(d["group"] for d in dead) == ["first", "second"]
    assert {d["entry_id"] for d in dead} == {entry_id}
    for record in dead:
        assert "handler bug" in json.loads(record["history"])[0]


async def test_a_dead_letter_that_cannot_be_written_is_retried_not_lost(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    # jarvis:dead-letter is unwritable (here: a key of the wrong type) when the entry fails.
    await redis.set(DEAD_LETTER, "in the way")
    settings = make_settings(consumer={"reclaim_idle_ms": 200})
    async with running(settings, [_always_failing("test")]):
        entry_id = (await redis.xadd(ALERTS.key, {"__data__": "not json"})).decode()
        await asyncio.sleep(1.0)  # the invalid entry was tried, reclaimed, tried again
        assert not await _nothing_pending(redis, "test")  # not acknowledged without a record
        await redis.delete(DEAD_LETTER)
        dead = await eventually(lambda: _dead(redis, 1), timeout=15)
        await eventually(lambda: _nothing_pending(redis, "test"))
    assert [d["entry_id"] for d in dead] == [entry_id]
    assert "not valid JSON" in dead[0]["reason"]
