"""Acknowledge, resolve and severity changes against the real escalator and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from services.escalator.main import build
from services.escalator.store import DUE_KEY
from shared.bus import EventBus
from shared.clock import ManualClock
from shared.events import IncidentAcknowledged, IncidentResolved, Severity
from shared.settings import Settings
from tests.helpers import eventually, running
from tests.integration._escalator_support import escalations_of, severity_event

pytestmark = pytest.mark.integration

QUIET_S = 0.3


def _incident() -> str:
    return f"inc-{uuid.uuid4().hex[:12]}"


async def _levels(redis: Redis, incident: str) -> list[int]:
    return [e["level"] for e in await escalations_of(redis, incident)]


async def _wait_levels(redis: Redis, incident: str, expected: list[int]) -> None:
    async def check() -> bool:
        return await _levels(redis, incident) == expected

    await eventually(check)
    await asyncio.sleep(QUIET_S)
    assert await _levels(redis, incident) == expected


async def _timers(redis: Redis, incident: str) -> int:
    return int(await redis.scard(f"jarvis:escalator:timers:{incident}"))


async def test_ack_stops_time_based_escalation_past_the_acknowledged_level(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    opened = clock.now()
    incident = _incident()
    async with running(make_settings(), [build], clock=clock):
        bus = EventBus(redis, producer="test")
        await bus.publish(severity_event(incident, Severity.P0, opened))
        await eventually(lambda: _async_eq(_timers(redis, incident), 4))
        clock.advance(timedelta(minutes=15))
        await _wait_levels(redis, incident, [2])

        await bus.publish(IncidentAcknowledged(incident_id=incident, by="alice"))
        await eventually(lambda: _async_eq(_timers(redis, incident), 0))
        state = await redis.hgetall(f"jarvis:escalator:incident:{incident}")
        assert state[b"ack_level"] == b"2"
        clock.advance(timedelta(hours=30))
        await _wait_levels(redis, incident, [2])


async def test_ack_extra_levels_lets_time_reach_the_next_level_only(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    opened = clock.now()
    incident = _incident()
    settings = make_settings(escalator={"ack_extra_levels": 1})
    async with running(settings, [build], clock=clock):
        bus = EventBus(redis, producer="test")
        await bus.publish(severity_event(incident, Severity.P1, opened))
        await eventually(lambda: _async_eq(_timers(redis, incident), 4))
        clock.advance(timedelta(minutes=20))
        await _wait_levels(redis, incident, [1])
        await bus.publish(IncidentAcknowledged(incident_id=incident))
        # L1 acknowledged, ceiling L2: the 1 h step (L2) stays, 4 h (L3) and 24 h (L4) go.
        await eventually(lambda: _async_eq(_timers(redis, incident), 1))
        clock.advance(timedelta(hours=30))
        await _wait_levels(redis, incident, [1, 2])


async def test_ack_before_any_escalation_holds_everything(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    incident = _incident()
    async with running(make_settings(), [build], clock=clock):
        bus = EventBus(redis, producer="test")
        # The ack arrives before triage's severity (different streams): it still counts.
        await bus.publish(IncidentAcknowledged(incident_id=incident))
        await eventually(
            lambda: redis.hexists(f"jarvis:escalator:incident:{incident}", "ack_level")
        )
        await bus.publish(severity_event(incident, Severity.P2, clock.now()))
        await eventually(lambda: redis.hexists(f"jarvis:escalator:incident:{incident}", "severity"))
        assert await _timers(redis, incident) == 0
        clock.advance(timedelta(hours=30))
        await _wait_levels(redis, incident, [])


async def test_resolve_cancels_everything(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    opened = clock.now()
    incident, other = _incident(), _incident()
    async with running(make_settings(), [build], clock=clock):
        bus = EventBus(redis, producer="test")
        await bus.publish(severity_event(incident, Severity.P0, opened))
        await bus.publish(severity_event(other, Severity.P0, opened))
        await eventually(lambda: _async_eq(redis.zcard(DUE_KEY), 8))
        clock.advance(timedelta(hours=1))
        await _wait_levels(redis, incident, [2, 3])  # stored timers each fire once

        await bus.publish(IncidentResolved(incident_id=incident, by="bob"))
        await eventually(lambda: _async_eq(redis.zcard(DUE_KEY), 2))  # only `other`'s left
        # Neither a later severity change nor an automatic trigger revives it.
        await bus.publish(
            severity_event(incident, Severity.P0, opened, occurred_at=clock.now(), data_loss=True)
        )
        clock.advance(timedelta(hours=30))
        await eventually(lambda: _async_eq(_levels(redis, other), [2, 3, 4, 5]))
        await _wait_levels(redis, incident, [2, 3])
        assert await redis.ttl(f"jarvis:escalator:incident:{incident}") > 0


async def test_severity_change_reschedules_and_fired_steps_never_fire_again(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    opened = clock.now()
    incident = _incident()
    async with running(make_settings(), [build], clock=clock):
        bus = EventBus(redis, producer="test")
        await bus.publish(severity_event(incident, Severity.P1, opened))
        await eventually(lambda: _async_eq(_timers(redis, incident), 4))
        clock.advance(timedelta(minutes=20))
        await _wait_levels(redis, incident, [1])

        # Raised to P0 at 30 min: P0's 15-minute step (L2) is overdue and fires at once;
        # the rest follow P0's thresholds from the original opening time.
        clock.advance(timedelta(minutes=10))
        raised = severity_event(
            incident, Severity.P0, opened, occurred_at=clock.now(), previous=Severity.P1
        )
        await bus.publish(raised)
        await _wait_levels(redis, incident, [1, 2])
        escalation = (await escalations_of(redis, incident))[-1]
        assert escalation["severity"] == "P0"

        # A redelivered or late copy of the old P1 assignment changes nothing.
        stale = severity_event(incident, Severity.P1, opened, occurred_at=opened)
        await bus.publish(stale)
        # …and a redelivery of the P0 change does not fire its steps again.
        await bus.publish(raised)
        clock.advance(timedelta(minutes=30))  # 1 h: P0 → L3
        await _wait_levels(redis, incident, [1, 2, 3])
        clock.advance(timedelta(hours=3))  # 4 h: L4
        await _wait_levels(redis, incident, [1, 2, 3, 4])
        clock.advance(timedelta(hours=20))  # 24 h: executive
        await _wait_levels(redis, incident, [1, 2, 3, 4, 5])
        steps = [e["step"] for e in await escalations_of(redis, incident)]
        assert len(steps) == len(set(steps))


async def _async_eq(awaitable: object, expected: object) -> bool:
    return bool(await awaitable == expected)  # type: ignore[misc]
