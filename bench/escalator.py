"""Benchmark: how fast the escalator fires due timers, against a baseline in the same run.

Baseline: appending the same number of EscalationDue events with one pipelined XADD
each (the least any "fire" can cost). Measured: `Escalations.fire_due` over the same
number of due timers, each through the exactly-once Lua script (state read, gate checks,
ZREM + SADD + HSET + XADD). Run: `python -m bench.escalator [incidents]`.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from redis.asyncio import Redis

from services.escalator.escalations import Escalations
from services.escalator.policy import Policy
from services.escalator.store import EscalatorStore
from shared.clock import ManualClock
from shared.embedded_redis import EmbeddedRedis
from shared.events import EscalationDue, EscalationTrigger, Level, Severity, SeverityAssigned
from shared.settings import EscalatorSettings


def _severity(incident: str, opened: object) -> SeverityAssigned:
    return SeverityAssigned(
        incident_id=incident,
        severity=Severity.P0,
        impact=Level.HIGH,
        urgency=Level.HIGH,
        response_due_at=opened,
        opened_at=opened,
        occurred_at=opened,
        reason="bench",
        fingerprint=incident,
        service="backend",
    )


async def run(incidents: int, url: str) -> None:
    redis = Redis.from_url(url)
    await redis.flushall()
    steps = incidents * 4
    events = [
        EscalationDue(
            incident_id=f"b-{i}",
            level=2,
            severity=Severity.P0,
            trigger=EscalationTrigger.TIME,
            reason="bench",
            step=f"time:{i}",
        ).to_json()
        for i in range(steps)
    ]
    started = time.perf_counter()
    pipe = redis.pipeline(transaction=False)
    for payload in events:
        pipe.xadd("bench:baseline", {"__data__": payload})
    await pipe.execute()
    baseline = time.perf_counter() - started

    clock = ManualClock()
    policy = Policy.from_settings(EscalatorSettings())
    escalations = Escalations(EscalatorStore(redis), clock, policy)
    opened = clock.now()
    started = time.perf_counter()
    for i in range(incidents):
        await escalations.on_severity(_severity(f"inc-{i}", opened))
    schedule = time.perf_counter() - started
    clock.advance(timedelta(hours=25))
    started = time.perf_counter()
    fired = await escalations.fire_due(clock.now())
    firing = time.perf_counter() - started
    assert fired == steps, (fired, steps)
    await redis.aclose()

    print(f"timers fired:            {steps}")
    print(f"baseline pipelined XADD: {baseline * 1e3:8.1f} ms  ({steps / baseline:9.0f}/s)")
    print(f"fire_due (exactly-once): {firing * 1e3:8.1f} ms  ({steps / firing:9.0f}/s)")
    print(f"ratio fire_due/baseline: {firing / baseline:8.1f}x")
    print(
        f"scheduling {incidents} incidents: {schedule * 1e3:.1f} ms "
        f"({incidents / schedule:.0f} incidents/s)"
    )


def main() -> None:
    incidents = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp))
        url = server.start()
        try:
            asyncio.run(run(incidents, url))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
