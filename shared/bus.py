"""Publishing events onto Redis Streams.

Events are written as plain JSON in the `__data__` field, exactly what another system
writes with `XADD jarvis:alerts * __data__ '<json>'`, so any language can read and write
every stream. Nothing is trimmed on the way in: streams are trimmed later, only below
what every consumer group has acknowledged (shared/retention.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from shared.events import Event
from shared.streams import ALERTS, stream_for

__all__ = ["DATA_FIELD", "SEAL_FIELD", "EventBus", "as_text"]

DATA_FIELD = "__data__"
SEAL_FIELD = "__seal__"  # beside an alert the detector stamped (shared.envelope)


class EventBus:
    """The one way services put events on streams."""

    def __init__(
        self,
        redis: Redis,
        *,
        producer: str = "jarvis",
        seal: Callable[[str], str] | None = None,
    ) -> None:
        self._redis = redis
        self.producer = producer
        self._seal = seal

    def _entry(self, event: Event) -> tuple[str, dict[FieldT, EncodableT]]:
        """Stream and fields of an event. Alerts are sealed (`shared.envelope`): consumers
        take their envelope as it is, where an unsealed entry's is only a sender's claim."""
        key = stream_for(event).key
        data = event.to_json()
        fields: dict[FieldT, EncodableT] = {DATA_FIELD: data}
        if self._seal is not None and key == ALERTS.key:
            fields[SEAL_FIELD] = self._seal(data)
        return key, fields

    async def publish(self, event: Event) -> str:
        """Append one event to its stream; returns the entry id."""
        key, fields = self._entry(event)
        return as_text(await self._redis.xadd(key, fields))

    async def publish_many(self, events: Iterable[Event]) -> list[str]:
        """Append several events in one round trip (a pipeline, in order)."""
        events = list(events)
        if len(events) == 1:  # one command: no pipeline to build
            return [await self.publish(events[0])]
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(*self._entry(event))
        return [as_text(i) for i in await pipe.execute()]


def as_text(value: Any) -> str:
    """Redis answers bytes; the code speaks str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
