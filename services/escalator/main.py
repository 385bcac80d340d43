"""Escalator's composition root: durable timers in a Redis sorted set.

Each pending escalation is a member of `jarvis:escalator:due` scored by its due time.
Firing removes the member and appends the EscalationDue in one Lua script, so a step
fires exactly once even with several replicas or a restart between the two.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from services.escalator.policy import schedule
from shared.bus import as_text
from shared.events import (
    EscalationDue,
    EscalationTrigger,
    Event,
    IncidentAcknowledged,
    IncidentResolved,
    Severity,
    SeverityAssigned,
)
from shared.runtime import Runtime, Service
from shared.streams import ESCALATIONS, INCIDENTS, SEVERITY

__all__ = ["DUE_KEY", "GROUP", "Timers", "build"]

GROUP = "escalator"
DUE_KEY = "jarvis:escalator:due"
_NS = uuid.UUID("9a2f7c1e-6b4d-4e8a-b0c3-7d5e1f2a3b44")

_FIRE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', '__data__', ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Timer:
    incident_id: str
    step: str
    level: int
    severity: Severity
    opened_at: float

    def member(self) -> str:
        return f"{self.incident_id}|{self.step}|{self.level}|{self.severity.value}|{self.opened_at}"

    @classmethod
    def parse(cls, member: str) -> Timer:
        incident_id, step, level, severity, opened_at = member.split("|")
        return cls(incident_id, step, int(level), Severity(severity), float(opened_at))


class Timers:
    """The durable schedule of every open incident."""

    def __init__(self, redis: Redis, maxlen: int) -> None:
        self._redis = redis
        self._maxlen = maxlen
        self._fire = redis.register_script(_FIRE)

    def _index(self, incident_id: str) -> str:
        return f"jarvis:escalator:incident:{incident_id}"

    async def replace(self, incident_id: str, timers: list[tuple[Timer, float]]) -> None:
        """Cancel the incident's pending timers and schedule `timers` (member, due ts)."""
        await self.cancel(incident_id)
        if not timers:
            return
        pipe = self._redis.pipeline(transaction=True)
        pipe.zadd(DUE_KEY, {t.member(): due for t, due in timers})
        pipe.sadd(self._index(incident_id), *(t.member() for t, _ in timers))
        await pipe.execute()

    async def cancel(self, incident_id: str) -> None:
        members = await self._redis.smembers(self._index(incident_id))
        pipe = self._redis.pipeline(transaction=True)
        if members:
            pipe.zrem(DUE_KEY, *members)
        pipe.delete(self._index(incident_id))
        await pipe.execute()

    async def fire_due(self, now: datetime) -> int:
        """Fire every timer due by `now`; returns how many this call fired."""
        fired = 0
        due = await self._redis.zrangebyscore(DUE_KEY, "-inf", now.timestamp(), start=0, num=500)
        for raw in due:
            member = as_text(raw)
            timer = Timer.parse(member)
            opened = datetime.fromtimestamp(timer.opened_at, UTC)
            event = EscalationDue(
                event_id=str(uuid.uuid5(_NS, f"{timer.incident_id}:{timer.step}")),
                producer=GROUP,
                incident_id=timer.incident_id,
                correlation_id=timer.incident_id,
                level=timer.level,
                severity=timer.severity,
                trigger=EscalationTrigger.TIME,
                reason=f"{timer.severity.value} open for {(now - opened).total_seconds():.0f}s",
                step=timer.step,
                elapsed_s=max(0.0, (now - opened).total_seconds()),
            )
            fired += int(
                await self._fire(
                    keys=[DUE_KEY, ESCALATIONS.key], args=[member, event.to_json(), self._maxlen]
                )
            )
        return fired


def build(runtime: Runtime) -> Service:
    timers = Timers(runtime.redis, runtime.settings.consumer.stream_maxlen)

    async def on_severity(event: Event) -> None:
        assert isinstance(event, SeverityAssigned)
        assert event.incident_id
        steps = schedule(event.severity, event.opened_at)
        await timers.replace(
            event.incident_id,
            [
                (
                    Timer(
                        event.incident_id,
                        s.step_id,
                        s.level,
                        event.severity,
                        event.opened_at.timestamp(),
                    ),
                    s.due_at.timestamp(),
                )
                for s in steps
            ],
        )

    async def on_incident(event: Event) -> None:
        if isinstance(event, IncidentResolved | IncidentAcknowledged) and event.incident_id:
            await timers.cancel(event.incident_id)

    async def tick() -> None:
        while True:
            await timers.fire_due(runtime.clock.now())
            await asyncio.sleep(runtime.settings.escalator.tick_s)

    return Service(
        name=GROUP,
        consumers=[
            runtime.consume(SEVERITY, GROUP, on_severity),
            runtime.consume(INCIDENTS, GROUP, on_incident),
        ],
        background=[tick],
    )
