"""Publishing events onto Redis Streams.

Events are written as plain JSON in the `__data__` field, exactly what another system
writes with `XADD jarvis:alerts * __data__ '<json>'`, so any language can read and write
every stream. Nothing is trimmed on the way in: streams are trimmed later, only below
what every consumer group has acknowledged (shared/retention.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis.asyncio import Redis

from shared.events import Event
from shared.streams import stream_for

__all__ = ["DATA_FIELD", "EventBus", "as_text"]

DATA_FIELD = "__data__"


class EventBus:
    """The one way services put events on streams."""

    def __init__(self, redis: Redis, *, producer: str = "jarvis") -> None:
        self._redis = redis
        self.producer = producer

    async def publish(self, event: Event) -> str:
        """Append one event to its stream; returns the entry id."""
        entry_id = await self._redis.xadd(stream_for(event).key, {DATA_FIELD: event.to_json()})
        return as_text(entry_id)

    async def publish_many(self, events: Iterable[Event]) -> list[str]:
        """Append several events in one round trip (a pipeline, in order)."""
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(stream_for(event).key, {DATA_FIELD: event.to_json()})
        return [as_text(i) for i in await pipe.execute()]


def as_text(value: Any) -> str:
    """Redis answers bytes; the code speaks str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
