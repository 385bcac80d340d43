"""A small reliable-consumer layer over FastStream's Redis stream subscriber.

What FastStream 0.7 gives: XREADGROUP through a group, XAUTOCLAIM with `min_idle_time`,
and manual acknowledgement. What it does not, and this module adds:

* the group is created from the start of the stream (id 0) before anything reads, so
  entries written before a service first starts are not skipped (FastStream uses `$`);
* an entry is acknowledged only after its handler succeeded; an entry that is not a valid
  event goes to `jarvis:dead-letter` with the reason, then is acknowledged;
* a handler failure leaves the entry pending; a second subscriber reclaims entries idle
  longer than `reclaim_idle_ms` (also those of a crashed replica) and retries them, and
  an entry delivered more than `max_deliveries` times is dead-lettered with its history
  (FastStream's nack/reject leave an entry pending and nothing would retry it);
* FastStream stops a subscriber for good when its group vanishes (NOGROUP, e.g. Redis
  restarted without persistence); a watchdog recreates the group and restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from faststream.redis.parser.binary import BinaryMessageFormatV1
from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.bus import DATA_FIELD, EventBus, as_text
from shared.events import Event, parse_event
from shared.settings import ConsumerSettings
from shared.streams import StreamSpec

__all__ = ["Handler", "StreamConsumer", "decode_entry", "ensure_group"]

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]

_HISTORY_TTL_S = 24 * 3600

CONSUMED = Counter(
    "jarvis_events_consumed_total",
    "Stream entries handled, by group, stream and result.",
    ["group", "stream", "result"],
)
HANDLE_SECONDS = Histogram(
    "jarvis_event_handle_seconds",
    "Time to handle one stream entry.",
    ["group", "stream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
# Group-wide values (every replica reports the same): aggregate with max, not sum.
LAG = Gauge(
    "jarvis_consumer_lag",
    "Entries of the stream not yet delivered to the group (XINFO GROUPS lag; Redis >= 7).",
    ["group", "stream"],
)
PENDING = Gauge(
    "jarvis_consumer_pending",
    "Entries delivered to the group and not yet acknowledged.",
    ["group", "stream"],
)


class InvalidEntry(ValueError):
    """A stream entry that is not a valid event; the message is the reason."""


def decode_entry(fields: dict[bytes, bytes], spec: StreamSpec) -> Event:
    """Turn a raw stream entry into an event, or raise InvalidEntry with the reason.

    Accepts `__data__` holding the event JSON (what we and other systems write), the same
    wrapped in FastStream's own binary format, or flat string fields without `__data__`.
    """
    raw = fields.get(DATA_FIELD.encode())
    data: Any
    if raw is not None:
        body, _headers = BinaryMessageFormatV1.parse(raw)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidEntry(f"__data__: not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise InvalidEntry("__data__: expected a JSON object")
    else:
        data = {}
        for key, value in fields.items():
            text = value.decode("utf-8", "replace")
            if text[:1] in "{[":
                with contextlib.suppress(json.JSONDecodeError):
                    data[key.decode("utf-8", "replace")] = json.loads(text)
                    continue
            data[key.decode("utf-8", "replace")] = text
    try:
        return parse_event(data, spec.events)
    except ValueError as exc:
        raise InvalidEntry(_reason(exc)) from exc


def _reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            loc = ".".join(str(p) for p in err.get("loc", ())) or "event"
            parts.append(f"{loc}: {err.get('msg')}")
        return "; ".join(parts)
    return str(exc)


async def ensure_group(redis: Redis, stream: str, group: str) -> bool:
    """Create the group at the start of the stream (and the stream); True if it was missing."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise
    return True


class StreamConsumer:
    """One stream read by one group through FastStream, with the guarantees above."""

    def __init__(
        self,
        *,
        broker: RedisBroker,
        redis: Redis,
        bus: EventBus,
        settings: ConsumerSettings,
        spec: StreamSpec,
        group: str,
        consumer: str,
        handler: Handler,
    ) -> None:
        self.spec = spec
        self.group = group
        self._redis = redis
        self._bus = bus
        self._settings = settings
        self._handler = handler
        self._history_prefix = f"jarvis:history:{group}:{spec.key}"

        # Two FastStream subscribers: new entries, and entries left pending too long.
        self._reader = broker.subscriber(
            stream=StreamSub(
                spec.key,
                group=group,
                consumer=consumer,
                max_records=settings.max_records,
                polling_interval=settings.block_ms,
            ),
            ack_policy=AckPolicy.MANUAL,
            title=f"{group}:{spec.key}",
        )
        self._reclaimer = broker.subscriber(
            stream=StreamSub(
                spec.key,
                group=group,
                consumer=consumer,
                min_idle_time=settings.reclaim_idle_ms,
                polling_interval=min(settings.reclaim_idle_ms, 1000),
            ),
            ack_policy=AckPolicy.MANUAL,
            title=f"{group}:{spec.key}:reclaim",
        )

        async def on_new(msg: RedisStreamMessage) -> None:
            await self._process(msg, reclaimed=False)

        async def on_reclaimed(msg: RedisStreamMessage) -> None:
            await self._process(msg, reclaimed=True)

        self._reader(on_new)
        self._reclaimer(on_reclaimed)

    @property
    def subscribers(self) -> tuple[Any, Any]:
        return (self._reader, self._reclaimer)

    async def prepare(self) -> None:
        """Create the group before the broker starts reading."""
        await ensure_group(self._redis, self.spec.key, self.group)

    async def _process(self, msg: RedisStreamMessage, *, reclaimed: bool) -> None:
        raw = msg.raw_message
        entry_id = raw["message_ids"][0].decode()
        fields: dict[bytes, bytes] = raw["data"]
        stream = self.spec.key
        started = time.perf_counter()
        try:
            event = decode_entry(fields, self.spec)
        except InvalidEntry as exc:
            await self._bus.dead_letter(
                stream=stream, entry_id=entry_id, group=self.group, reason=str(exc), fields=fields
            )
            await msg.ack()
            CONSUMED.labels(self.group, stream, "dead_letter").inc()
            log.warning("%s: entry %s on %s is invalid: %s", self.group, entry_id, stream, exc)
            return

        if reclaimed:
            deliveries = await msg.get_delivery_count()
            if deliveries > self._settings.max_deliveries:
                history_key = f"{self._history_prefix}:{entry_id}"
                history = [as_text(h) for h in await self._redis.lrange(history_key, 0, -1)]
                await self._bus.dead_letter(
                    stream=stream,
                    entry_id=entry_id,
                    group=self.group,
                    reason=f"delivered {deliveries} times without success",
                    fields=fields,
                    deliveries=deliveries,
                    history=history,
                )
                await msg.ack()
                CONSUMED.labels(self.group, stream, "dead_letter").inc()
                return

        try:
            await self._handler(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Left pending on purpose: the reclaimer retries it after reclaim_idle_ms.
            log.exception("%s: handler failed for %s on %s", self.group, entry_id, stream)
            history_key = f"{self._history_prefix}:{entry_id}"
            pipe = self._redis.pipeline(transaction=False)
            pipe.rpush(history_key, f"{time.time():.3f} {type(exc).__name__}: {exc}"[:2000])
            pipe.expire(history_key, _HISTORY_TTL_S)
            await pipe.execute()
            CONSUMED.labels(self.group, stream, "error").inc()
            return
        await msg.ack()
        CONSUMED.labels(self.group, stream, "ok").inc()
        HANDLE_SECONDS.labels(self.group, stream).observe(time.perf_counter() - started)

    async def heal(self) -> bool:
        """Recreate a lost group and restart subscribers that FastStream stopped; report the
        group's lag and pending count (jarvis_consumer_lag, jarvis_consumer_pending).

        Returns True when something had to be repaired.
        """
        repaired = False
        try:
            groups = await self._redis.xinfo_groups(self.spec.key)
            names = {as_text(g["name"]) for g in groups}
        except ResponseError:  # the stream itself is gone
            groups, names = [], set()
        for info in groups:
            if as_text(info["name"]) == self.group:
                PENDING.labels(self.group, self.spec.key).set(info.get("pending") or 0)
                if info.get("lag") is not None:
                    LAG.labels(self.group, self.spec.key).set(info["lag"])
        if self.group not in names:
            await ensure_group(self._redis, self.spec.key, self.group)
            log.warning("%s: consumer group on %s was lost; recreated", self.group, self.spec.key)
            repaired = True
        for sub in self.subscribers:
            if repaired and sub.running:
                await sub.stop()
            if not sub.running:
                await sub.start()
                repaired = True
        return repaired
