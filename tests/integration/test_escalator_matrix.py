"""Every cell of the runbook's escalation matrix (CONTRACT §3), driven through the real
escalator service and a real Redis by a manual clock: 24 hours in a few seconds."""

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
from shared.events import Severity
from shared.settings import Settings
from tests.helpers import eventually, running
from tests.integration._escalator_support import escalations_of, severity_event

pytestmark = pytest.mark.integration

THRESHOLDS = [timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4), timedelta(hours=24)]
# Row per severity, one cell per threshold: the level reached then (None: nothing is sent).
MATRIX: dict[Severity, list[int | None]] = {
    Severity.P0: [2, 3, 4, 5],
    Severity.P1: [1, 2, 3, 4],
    Severity.P2: [None, 1, 2, 3],
    Severity.P3: [None, None, None, None],
}
QUIET_S = 0.3  # several ticks of 0.05 s: long enough for a wrong escalation to show


async def test_every_cell_of_the_matrix_fires_at_its_threshold_and_not_before(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    opened = clock.now()
    incidents = {sev: f"matrix-{sev.value}-{uuid.uuid4().hex[:8]}" for sev in MATRIX}
    async with running(make_settings(), [build], clock=clock):
        bus = EventBus(redis, producer="test")
        for sev, incident in incidents.items():
            await bus.publish(severity_event(incident, sev, opened))
        expected_timers = sum(1 for row in MATRIX.values() for cell in row if cell)
        await eventually(lambda: _zcard_is(redis, expected_timers))

        fired: dict[Severity, list[int]] = {sev: [] for sev in MATRIX}
        for column, threshold in enumerate(THRESHOLDS):
            clock.advance(opened + threshold - timedelta(seconds=1) - clock.now())
            await asyncio.sleep(QUIET_S)
            for sev, incident in incidents.items():
                levels = [e["level"] for e in await escalations_of(redis, incident)]
                assert levels == fired[sev], f"{sev} escalated before {threshold}"

            clock.advance(timedelta(seconds=1))
            for sev, incident in incidents.items():
                cell = MATRIX[sev][column]
                if cell is not None:
                    fired[sev].append(cell)
                count = len(fired[sev])
                await eventually(lambda i=incident, n=count: _count_is(redis, i, n))
            await asyncio.sleep(QUIET_S)
            for sev, incident in incidents.items():
                events = await escalations_of(redis, incident)
                assert [e["level"] for e in events] == fired[sev], f"{sev} at {threshold}"
                if MATRIX[sev][column] is not None:
                    last = events[-1]
                    assert last["trigger"] == "time"
                    assert last["severity"] == sev.value
                    assert last["elapsed_s"] == threshold.total_seconds()
                    assert last["contacts"], "the level's contacts are named"

        clock.advance(timedelta(hours=48))
        await asyncio.sleep(QUIET_S)
        assert {
            s: [e["level"] for e in await escalations_of(redis, i)] for s, i in incidents.items()
        } == {s: [c for c in row if c] for s, row in MATRIX.items()}
        assert await redis.zcard(DUE_KEY) == 0


async def _zcard_is(redis: Redis, n: int) -> bool:
    return int(await redis.zcard(DUE_KEY)) == n


async def _count_is(redis: Redis, incident: str, n: int) -> bool:
    return len(await escalations_of(redis, incident)) == n
