"""Publishing events onto Redis Streams.

Events are written as plain JSON in the `__data__` field, exactly what another system
writes with `XADD jarvis:alerts * __data__ '<json>'`, so any language can read and write
every stream. Nothing is trimmed on the way in: streams are trimmed later, only below
what every consumer group has acknowledged (shared/retention.py).

HTTP ingest, many requests in flight at once, appends through `StreamAppender`: the
entries of the callers of one turn of the event loop go to Redis in one round trip (one
script call that XADDs each, in order). Each caller still returns only once its own
entries are on the stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from shared.events import Event
from shared.streams import ALERTS, stream_for

__all__ = ["DATA_FIELD", "SEAL_FIELD", "EventBus", "StreamAppender", "as_text"]

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
        self._appenders: dict[str, StreamAppender] = {}

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

    async def publish_together(self, events: Iterable[Event]) -> list[str]:
        """`publish_many` for events of one stream, sharing round trips to Redis with the
        other callers publishing at the same moment (`StreamAppender`); returns entry ids."""
        entries = [self._entry(event) for event in events]
        if not entries:
            return []
        key = entries[0][0]
        if any(other != key for other, _ in entries):
            raise ValueError("publish_together: events of one stream only")
        appender = self._appenders.get(key)
        if appender is None:
            appender = self._appenders[key] = StreamAppender(self._redis, key)
        return await appender.append([fields for _, fields in entries])

    async def publish_many(self, events: Iterable[Event]) -> list[str]:
        """Append several events in one round trip (a pipeline, in order)."""
        events = list(events)
        if len(events) == 1:  # one command: no pipeline to build
            return [await self.publish(events[0])]
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(*self._entry(event))
        return [as_text(i) for i in await pipe.execute()]


# KEYS: the stream. ARGV: n (fields per entry), the n field names, then n values per
# entry. XADDs each entry in order; returns their ids.
_XADD_EACH = """
local n = tonumber(ARGV[1])
local args = {KEYS[1], '*'}
local ids = {}
for first = n + 2, #ARGV, n do
  for f = 1, n do
    args[1 + 2 * f] = ARGV[1 + f]
    args[2 + 2 * f] = ARGV[first + f - 1]
  end
  ids[#ids + 1] = redis.call('XADD', unpack(args))
end
return ids
"""
_BATCH_ENTRIES = 2000  # at most per round trip, unless one caller brings more at once

Fields = dict[FieldT, EncodableT]


class StreamAppender:
    """Appends entries to one stream for many concurrent callers, in few round trips.

    Callers queue their entries; the first caller of a turn of the event loop schedules a
    round trip, which takes every caller queued by the time it starts (each caller's
    entries together and in order; at most `_BATCH_ENTRIES` per round trip, unless one
    caller brings more). Callers arriving while it is in flight start the next one: no one
    waits behind another's round trip. A caller returns when its entries are on the stream,
    or raises what Redis raised for its round trip (then some entries of it may be on the
    stream, as with a pipeline: a caller that retries may add them twice).
    One entry alone is a plain XADD; more are one script call (redis-py's command building
    and reply parsing, per command, cost more than the script).
    """

    def __init__(self, redis: Redis, key: str) -> None:
        self._redis = redis
        self._key = key
        self._script = redis.register_script(_XADD_EACH)
        self._queue: deque[tuple[Sequence[Fields], asyncio.Future[list[str]]]] = deque()
        self._next: asyncio.Task[None] | None = None  # the round trip not started yet

    async def append(self, entries: Sequence[Fields]) -> list[str]:
        """Append `entries` in order; their ids once Redis has them all."""
        if not entries:
            return []
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[str]] = loop.create_future()
        self._queue.append((entries, done))
        upcoming = self._next
        # (done: cancelled before it started; another loop: a test's earlier one)
        if upcoming is None or upcoming.done() or upcoming.get_loop() is not loop:
            self._next = loop.create_task(self._flush())
        return await done

    async def _flush(self) -> None:
        self._next = None  # callers from now on go to the next round trip
        batch = [self._queue.popleft()]
        size = len(batch[0][0])
        while self._queue and size + len(self._queue[0][0]) <= _BATCH_ENTRIES:
            batch.append(self._queue.popleft())
            size += len(batch[-1][0])
        if self._queue:  # more than one round trip takes: the rest in the next
            self._next = asyncio.get_running_loop().create_task(self._flush())
        await self._send(batch)

    async def _send(self, batch: list[tuple[Sequence[Fields], asyncio.Future[list[str]]]]) -> None:
        try:
            ids = await self._write([fields for entries, _ in batch for fields in entries])
        except Exception as exc:  # to the callers: each answers for its own request
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        except BaseException:  # cancelled (shutdown): so are the callers still waiting
            for _, done in batch:
                done.cancel()
            raise
        start = 0
        for entries, done in batch:
            if not done.done():
                done.set_result(ids[start : start + len(entries)])
            start += len(entries)

    async def _write(self, entries: list[Fields]) -> list[str]:
        if len(entries) == 1:
            return [as_text(await self._redis.xadd(self._key, entries[0]))]
        names = list(entries[0])
        if any(list(fields) != names for fields in entries):  # not one shape: one by one
            pipe = self._redis.pipeline(transaction=False)
            for fields in entries:
                pipe.xadd(self._key, fields)
            return [as_text(i) for i in await pipe.execute()]
        args: list[EncodableT] = [len(names), *names]
        for fields in entries:
            args.extend(fields.values())
        return [as_text(i) for i in await self._script(keys=[self._key], args=args)]


def as_text(value: Any) -> str:
    """Redis answers bytes; the code speaks str."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
