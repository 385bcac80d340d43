"""Dead man's switches: configured senders call `/api/v1/heartbeats/{name}`; one that stays
silent longer than its period raises an alert, and its next call resolves it.

The last call is kept in Redis, so a restart of the detector (or a second replica) sees it.
A sender never heard of since the detector started gets one period of grace.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from redis.asyncio import Redis

from services.detector.probes import Outcome, ProbeResult, Schedule
from shared.bus import as_text
from shared.clock import Clock
from shared.events import Level
from shared.settings import HeartbeatSettings

__all__ = ["HeartbeatProbe", "HeartbeatStore"]

_KEY = "jarvis:detector:heartbeat:{}"
_TTL_S = 30 * 24 * 3600


class HeartbeatStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def beat(self, name: str, at: datetime) -> None:
        await self._redis.set(_KEY.format(name), at.isoformat(), ex=_TTL_S)

    async def last(self, names: Sequence[str]) -> dict[str, datetime | None]:
        if not names:
            return {}
        values = await self._redis.mget([_KEY.format(n) for n in names])
        return {
            name: datetime.fromisoformat(as_text(v)) if v else None
            for name, v in zip(names, values, strict=True)
        }


class HeartbeatProbe:
    """Checks every configured heartbeat's age against its period."""

    service = "detector"
    check = "heartbeats"

    def __init__(
        self,
        store: HeartbeatStore,
        heartbeats: Sequence[HeartbeatSettings],
        clock: Clock,
        schedule: Schedule,
    ) -> None:
        self.name = "heartbeats"
        self.schedule = schedule
        self._store = store
        self._beats = {h.name: h for h in heartbeats}
        self._clock = clock
        self._started = clock.now()

    async def run(self) -> Outcome:
        now = self._clock.now()
        last = await self._store.last(list(self._beats))
        results = []
        for name, beat in self._beats.items():
            seen = last.get(name)
            age = (now - (seen or self._started)).total_seconds()
            ok = age <= beat.period_s
            if seen is None:
                detail = "never called" + ("" if ok else f" within {beat.period_s:g}s")
            else:
                detail = f"last call {age:.0f}s ago (period {beat.period_s:g}s)"
            results.append(
                ProbeResult(
                    beat.service or name,
                    "heartbeat",
                    ok,
                    f"heartbeat {name!r}: {detail}",
                    Level.HIGH,
                    Level.LOW,
                    round(age, 3),
                    {"heartbeat": name},
                )
            )
        return Outcome(results)
