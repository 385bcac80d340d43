"""Publishing events onto Redis Streams, and the dead-letter stream.

Events are written as plain JSON in the `__data__` field, exactly what another system
writes with `XADD jarvis:alerts * __data__ '<json>'`, so any language can read and write
every stream. Streams are trimmed approximately (`MAXLEN ~`) to bound Redis memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from shared.events import Event, utcnow
from shared.streams import ALERTS, DEAD_LETTER, stream_for

__all__ = ["DATA_FIELD", "SEAL_FIELD", "EventBus", "as_text"]

DATA_FIELD = "__data__"
SEAL_FIELD = "__seal__"  # beside an alert the detector stamped (shared.envelope)
_DEAD_LETTER_SEEN_TTL_S = 24 * 3600


class EventBus:
    """The one way services put events on streams."""

    def __init__(
        self,
        redis: Redis,
        *,
        maxlen: int,
        producer: str = "jarvis",
        seal: Callable[[str], str] | None = None,
    ) -> None:
        self._redis = redis
        self._maxlen = maxlen
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
        entry_id = await self._redis.xadd(key, fields, maxlen=self._maxlen, approximate=True)
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    async def publish_many(self, events: Iterable[Event]) -> list[str]:
        """Append several events in one round trip (a pipeline, in order)."""
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            key, fields = self._entry(event)
            pipe.xadd(key, fields, maxlen=self._maxlen, approximate=True)
        ids = await pipe.execute()
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def dead_letter(
        self,
        *,
        stream: str,
        entry_id: str,
        group: str,
        reason: str,
        fields: Mapping[Any, Any],
        deliveries: int = 1,
        history: list[str] | None = None,
    ) -> bool:
        """Move a bad entry to `jarvis:dead-letter` with the reason.

        Several groups read the same stream; the first to reject an entry records it,
        so one bad entry appears once. Returns whether this call recorded it.
        """
        seen_key = f"{DEAD_LETTER}:seen:{stream}:{entry_id}"
        first = await self._redis.set(seen_key, group, nx=True, ex=_DEAD_LETTER_SEEN_TTL_S)
        if not first:
            return False
        payload = {as_text(k): as_text(v) for k, v in fields.items()}
        record: dict[FieldT, EncodableT] = {
            "stream": stream,
            "entry_id": entry_id,
            "group": group,
            "reason": reason[:4000],
            "deliveries": str(deliveries),
            "dead_at": utcnow().isoformat(),
            "payload": json.dumps(payload)[:65536],
            "history": json.dumps(history or []),
        }
        await self._redis.xadd(DEAD_LETTER, record, maxlen=self._maxlen, approximate=True)
        return True


def as_text(value: Any) -> str:
    """Redis answers bytes; the code speaks str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
