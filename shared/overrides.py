"""On-call overrides as runtime state in Redis, shared by every escalator replica and the
API: one hash per schedule (`jarvis:oncall:overrides:<schedule>`, override id → JSON).

Each change is also an event on jarvis:incidents (ScheduleOverrideAdded / Removed), so the
recorder keeps the audit trail; this store is what resolution reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta

from redis.asyncio import Redis

from shared.rotation import Override

__all__ = ["OverrideStore"]

_PREFIX = "jarvis:oncall:overrides:"
# Overrides over this long ago are of no use to resolution; the timeline keeps them.
_KEEP_AFTER_END = timedelta(days=30)


def _dump(o: Override) -> str:
    return json.dumps(
        {
            "id": o.id,
            "schedule": o.schedule,
            "person": o.person,
            "starts_at": o.starts_at.isoformat(),
            "ends_at": o.ends_at.isoformat(),
            "created_at": o.created_at.isoformat(),
            "created_by": o.created_by,
        }
    )


def _load(raw: bytes | str) -> Override:
    d = json.loads(raw)
    return Override(
        id=d["id"],
        schedule=d["schedule"],
        person=d["person"],
        starts_at=datetime.fromisoformat(d["starts_at"]),
        ends_at=datetime.fromisoformat(d["ends_at"]),
        created_at=datetime.fromisoformat(d["created_at"]),
        created_by=d.get("created_by", "operator"),
    )


class OverrideStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def add(self, override: Override) -> bool:
        """Store it; False when an override with that id exists (a retried request)."""
        key = _PREFIX + override.schedule
        return bool(await self._redis.hsetnx(key, override.id, _dump(override)))

    async def remove(self, schedule: str, override_id: str) -> Override | None:
        """Delete it; the override removed, or None when there was none."""
        key = _PREFIX + schedule
        pipe = self._redis.pipeline(transaction=True)
        pipe.hget(key, override_id)
        pipe.hdel(key, override_id)
        raw, deleted = await pipe.execute()
        return _load(raw) if raw is not None and deleted else None

    async def of(self, schedule: str) -> list[Override]:
        """The schedule's overrides, by start time."""
        raw = await self._redis.hvals(_PREFIX + schedule)
        return sorted((_load(r) for r in raw), key=lambda o: (o.starts_at, o.created_at))

    async def of_all(self, schedules: Iterable[str]) -> dict[str, list[Override]]:
        names = list(schedules)
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.hvals(_PREFIX + name)
        found = await pipe.execute()
        return {
            name: sorted((_load(r) for r in raw), key=lambda o: (o.starts_at, o.created_at))
            for name, raw in zip(names, found, strict=True)
        }

    async def prune(self, schedule: str, now: datetime) -> int:
        """Forget overrides that ended long ago; returns how many."""
        old = [o.id for o in await self.of(schedule) if o.ends_at < now - _KEEP_AFTER_END]
        if old:
            await self._redis.hdel(_PREFIX + schedule, *old)
        return len(old)
