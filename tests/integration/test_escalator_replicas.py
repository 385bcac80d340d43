"""Two escalator replicas on one Redis: every step fires once and is notified once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from services.escalator.escalations import Escalations
from services.escalator.main import build
from services.escalator.policy import Policy
from services.escalator.store import DUE_KEY, EscalatorStore
from shared.bus import EventBus
from shared.clock import ManualClock
from shared.events import Severity
from shared.settings import EscalatorSettings, Settings
from tests.helpers import eventually, running
from tests.integration._escalator_support import (
    escalations_of,
    http_receiver,
    notifications_of,
    severity_event,
)

pytestmark = pytest.mark.integration

STEPS = {Severity.P0: 4, Severity.P1: 4, Severity.P2: 3, Severity.P3: 0}


async def test_two_replicas_fire_and_notify_each_step_exactly_once(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    opened = clock.now()
    severities = [Severity.P0, Severity.P1, Severity.P2, Severity.P3] * 6
    incidents = {f"rep-{i}-{uuid.uuid4().hex[:8]}": sev for i, sev in enumerate(severities)}
    total = sum(STEPS[s] for s in incidents.values())
    with http_receiver() as hook:
        settings = make_settings(
            escalator={
                "notifier": {
                    "webhook": {"url": hook.url},
                    "retry": {"timeout_s": 2, "backoff_initial_s": 0.05},
                }
            }
        )
        async with (
            running(settings, [build], clock=clock),
            running(settings, [build], clock=clock),
        ):
            bus = EventBus(redis, producer="test")
            await bus.publish_many(severity_event(i, s, opened) for i, s in incidents.items())
            await eventually(lambda: _zcard_is(redis, total))
            for hours in (0.25, 1, 4, 24, 48):
                clock.advance(opened + timedelta(hours=hours) - clock.now())
                await asyncio.sleep(0.1)
            await eventually(lambda: _count_is(redis, total), timeout=20)
            await eventually(lambda: _notified(hook.bodies, total), timeout=20)
            await asyncio.sleep(0.5)

    escalations = await escalations_of(redis)
    assert len(escalations) == total
    keys = Counter((e["incident_id"], e["step"]) for e in escalations)
    assert max(keys.values()) == 1
    per_incident = Counter(e["incident_id"] for e in escalations)
    assert {i: per_incident.get(i, 0) for i in incidents} == {
        i: STEPS[s] for i, s in incidents.items()
    }
    sent = Counter((b["incident_id"], b["step"]) for b in hook.bodies())
    assert sent == keys  # every step delivered once to the receiver
    records = await notifications_of(redis)
    assert len({r["event_id"] for r in records}) == total


async def test_racing_ticks_split_the_due_timers_without_overlap(redis: Redis) -> None:
    """Two replicas' ticks over the same 400 due timers: their counts add up exactly."""
    clock = ManualClock()
    opened = clock.now()
    policy = Policy.from_settings(EscalatorSettings())
    replicas = [
        Escalations(EscalatorStore(Redis.from_url(_url(redis))), clock, policy) for _ in range(2)
    ]
    incidents = [f"race-{i}-{uuid.uuid4().hex[:6]}" for i in range(100)]
    for incident in incidents:
        await replicas[0].on_severity(severity_event(incident, Severity.P0, opened))
    assert await redis.zcard(DUE_KEY) == 400
    clock.advance(timedelta(hours=25))
    fired = await asyncio.gather(*(r.fire_due(clock.now()) for r in replicas))
    assert sum(fired) == 400
    assert await redis.zcard(DUE_KEY) == 0
    escalations = await escalations_of(redis)
    assert len(escalations) == 400
    assert len({(e["incident_id"], e["step"]) for e in escalations}) == 400
    # A late third tick finds nothing left.
    assert await replicas[1].fire_due(clock.now()) == 0


def _url(redis: Redis) -> str:
    kwargs = redis.connection_pool.connection_kwargs
    auth = f":{kwargs['password']}@" if kwargs.get("password") else ""
    return f"redis://{auth}{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


async def _zcard_is(redis: Redis, n: int) -> bool:
    return int(await redis.zcard(DUE_KEY)) == n


async def _count_is(redis: Redis, n: int) -> bool:
    return len(await escalations_of(redis)) >= n


async def _notified(bodies: Callable[[], list[object]], n: int) -> bool:
    return len(bodies()) >= n
