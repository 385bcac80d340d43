"""The remediator's approval sweep looks at every overdue action and drops the ids whose
request is gone, so orphans never starve it (issue 13 case 9)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from services.remediator.main import build
from services.remediator.state import PENDING
from shared.clock import ManualClock
from shared.events import ActionRequested
from shared.settings import Settings
from shared.streams import ACTIONS_COMPLETED
from tests.helpers import eventually, read_stream, running

pytestmark = pytest.mark.integration


async def _answers(redis: Redis, action_id: str) -> list[dict[str, Any]]:
    return [
        c for c in await read_stream(redis, ACTIONS_COMPLETED.key) if c["action_id"] == action_id
    ]


async def test_orphaned_approvals_are_dropped_and_every_overdue_one_is_answered(
    redis: Redis, redis_url: str, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    target_url = redis_url.rsplit("/", 1)[0] + "/9"
    settings = make_settings(
        remediator={
            "enabled": True,
            "enabled_actions": ["*"],
            "tick_s": 0.05,
            "approval_timeout_s": 60,
            "allowed_targets": ["jarvis-redis"],
            "redis_targets": {"jarvis-redis": {"url": target_url}},
        }
    )
    # 250 ids waiting for an approval whose request is gone (expired, or deleted by
    # hand), all overdue before any real one: more than one page of the sweep.
    long_ago = clock.now().timestamp() - 3600
    await redis.zadd(PENDING, {f"orphan-{i}": long_ago + i for i in range(250)})
    flushes = [
        ActionRequested(
            action="redis.flushdb",
            target="jarvis-redis",
            incident_id=str(uuid.uuid4()),
            requested_by="test",
        )
        for _ in range(3)
    ]
    async with running(settings, [build], clock=clock) as (_, runtime):
        bus = runtime.bus("test")
        for flush in flushes:  # dangerous: each waits for an approval
            await bus.publish(flush)

        async def all_waiting() -> bool:
            return all([await _answers(redis, f.action_id) for f in flushes])

        await eventually(all_waiting)
        clock.advance(61)

        async def all_timed_out() -> list[list[dict[str, Any]]] | None:
            answers = [await _answers(redis, f.action_id) for f in flushes]
            return answers if all(len(a) == 2 for a in answers) else None

        answers = await eventually(all_timed_out, timeout=15)
        assert await redis.zcard(PENDING) == 0  # the orphans are gone too
    for first, final in answers:
        assert first["outcome"] == "awaiting_approval"
        assert final["outcome"] == "timed_out"
