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
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

from faststream.middlewares import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisBatchStreamMessage, RedisStreamMessage
from faststream.redis.parser.binary import BinaryMessageFormatV1
from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.bus import DATA_FIELD, EventBus, as_text
from shared.events import Event, parse_event
from shared.settings import ConsumerSettings
from shared.streams import StreamSpec

__all__ = [
    "Admission",
    "BatchHandler",
    "Handler",
    "Retryable",
    "StreamConsumer",
    "decode_entry",
    "ensure_group",
]

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]
BatchHandler = Callable[[list[Event]], Awaitable[None]]
# What a stream's readers make of a decoded entry before handling it (its fields and id
# at hand): `shared.envelope.AlertAdmission` on jarvis:alerts.
Admission = Callable[[Event, dict[bytes, bytes], str], Event]

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
        for raw_key, value in fields.items():
            try:
                key, text = raw_key.decode(), value.decode()
            except UnicodeDecodeError as exc:
                name = raw_key.decode("utf-8", "replace")
                raise InvalidEntry(f"{name}: not valid UTF-8 text") from exc
            if text[:1] in "{[":
                with contextlib.suppress(json.JSONDecodeError):
                    data[key] = json.loads(text)
                    continue
            data[key] = text
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


class Retryable(Exception):
    """A dependency is unavailable (database down, …): retry later, and do not count the
    failure against the entry, so an outage never sends good events to the dead-letter stream."""


class StreamConsumer:
    """One stream read by one group through FastStream, with the guarantees above.

    Give `handler` for one event at a time, or `batch_handler` for up to `max_records`
    events at once (one transaction): the batch is acknowledged only when the whole batch
    succeeded. Either way entries are read and acknowledged in batches (one XACK); with
    `handler`, an entry it fails on stays pending alone. Entries retried by the reclaimer
    come one at a time.
    """

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
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        admit: Admission | None = None,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")
        self._admit = admit
        self.spec = spec
        self.group = group
        self._redis = redis
        self._bus = bus
        self._settings = settings
        self._handler = handler
        self._handle_batch = batch_handler
        self._history_prefix = f"jarvis:history:{group}:{spec.key}"

        # Two FastStream subscribers: new entries, and entries left pending too long. New
        # entries are read in batches whichever the handler: FastStream's per-message path
        # costs more than most handlers, and a batch is acknowledged with one XACK.
        self._reader = broker.subscriber(
            stream=StreamSub(
                spec.key,
                group=group,
                consumer=consumer,
                batch=True,
                max_records=settings.max_records,
                polling_interval=settings.block_ms,
            ),
            ack_policy=AckPolicy.MANUAL,
            parser=_raw_parse,
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
            parser=_raw_parse,
            title=f"{group}:{spec.key}:reclaim",
        )

        async def on_new_batch(msg: RedisBatchStreamMessage) -> None:
            raw = msg.raw_message
            await self._process(msg, raw["message_ids"], _fields(raw), reclaimed=False)

        self._reader(on_new_batch)

        async def on_reclaimed(msg: RedisStreamMessage) -> None:
            raw = msg.raw_message
            await self._process(msg, raw["message_ids"], [_fields(raw)], reclaimed=True)

        self._reclaimer(on_reclaimed)

    @property
    def subscribers(self) -> tuple[Any, Any]:
        return (self._reader, self._reclaimer)

    async def prepare(self) -> None:
        """Create the group before the broker starts reading."""
        await ensure_group(self._redis, self.spec.key, self.group)

    async def _process(
        self,
        msg: Any,
        ids: list[bytes],
        entries: list[dict[bytes, bytes]],
        *,
        reclaimed: bool,
    ) -> None:
        stream = self.spec.key
        started = time.perf_counter()
        events: list[Event] = []
        good_ids: list[str] = []
        rejected: list[bytes] = []
        for raw_id, fields in zip(ids, entries, strict=True):
            entry_id = raw_id.decode()
            try:
                event = decode_entry(fields, self.spec)
            except InvalidEntry as exc:
                await self._bus.dead_letter(
                    stream=stream,
                    entry_id=entry_id,
                    group=self.group,
                    reason=str(exc),
                    fields=fields,
                )
                rejected.append(raw_id)
                CONSUMED.labels(self.group, stream, "dead_letter").inc()
                # %r: the reason quotes the entry, which anyone who can XADD wrote.
                log.warning("%s: entry %s on %s is invalid: %r", self.group, entry_id, stream, exc)
                continue
            if reclaimed and await self._give_up(msg, entry_id, fields):
                rejected.append(raw_id)
                continue
            if self._admit is not None:
                event = self._admit(event, fields, entry_id)
            events.append(event)
            good_ids.append(entry_id)

        failures = await self._handle(events, good_ids) if events else []
        if not failures:
            await msg.ack()
        else:
            # Failed entries stay pending on purpose: the reclaimer retries them after
            # reclaim_idle_ms. Everything else of the batch is acknowledged.
            failed = {entry_id for entry_id, _ in failures}
            done = [raw_id for raw_id in ids if raw_id.decode() not in failed]
            if done:
                await self._redis.xack(stream, self.group, *done)
            for error, entry_ids in _by_error(failures):
                await self._record_failure(entry_ids, error)
        ok = len(events) - len(failures)
        CONSUMED.labels(self.group, stream, "ok").inc(ok)
        HANDLE_SECONDS.labels(self.group, stream).observe(time.perf_counter() - started)

    async def _handle(
        self, events: list[Event], entry_ids: list[str]
    ) -> list[tuple[str, Exception]]:
        """Run the handler; the entries it failed on, with the error."""
        if self._handle_batch is not None:
            try:
                await self._handle_batch(events)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                return [(entry_id, exc) for entry_id in entry_ids]
            return []
        assert self._handler is not None
        failures: list[tuple[str, Exception]] = []
        for event, entry_id in zip(events, entry_ids, strict=True):
            try:
                await self._handler(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures.append((entry_id, exc))
        return failures

    async def _give_up(self, msg: Any, entry_id: str, fields: dict[bytes, bytes]) -> bool:
        """Dead-letter a reclaimed entry that keeps failing; True if it was."""
        history_key = f"{self._history_prefix}:{entry_id}"
        failures = int(await self._redis.llen(history_key))
        deliveries = await msg.get_delivery_count()
        # Retryable failures are not in the history; a consumer that crashes on an entry
        # leaves no history either, hence the hard cap on deliveries.
        limit = self._settings.max_deliveries
        if failures < limit and deliveries <= limit * 10:
            return False
        history = [as_text(h) for h in await self._redis.lrange(history_key, 0, -1)]
        await self._bus.dead_letter(
            stream=self.spec.key,
            entry_id=entry_id,
            group=self.group,
            reason=f"delivered {deliveries} times without success",
            fields=fields,
            deliveries=deliveries,
            history=history,
        )
        CONSUMED.labels(self.group, self.spec.key, "dead_letter").inc()
        return True

    async def _record_failure(self, entry_ids: list[str], exc: Exception) -> None:
        stream = self.spec.key
        if isinstance(exc, Retryable):
            CONSUMED.labels(self.group, stream, "retry").inc(len(entry_ids))
            log.warning("%s: %d entries on %s wait: %s", self.group, len(entry_ids), stream, exc)
            return
        CONSUMED.labels(self.group, stream, "error").inc(len(entry_ids))
        log.error(
            "%s: handler failed for %d entries on %s",
            self.group,
            len(entry_ids),
            stream,
            exc_info=exc,
        )
        line = f"{time.time():.3f} {type(exc).__name__}: {exc}"[:2000]
        pipe = self._redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.rpush(f"{self._history_prefix}:{entry_id}", line)
            pipe.expire(f"{self._history_prefix}:{entry_id}", _HISTORY_TTL_S)
        await pipe.execute()

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


def _by_error(failures: list[tuple[str, Exception]]) -> list[tuple[Exception, list[str]]]:
    """Failures grouped by the exception object (a batch handler's one error for all)."""
    groups: dict[int, tuple[Exception, list[str]]] = {}
    for entry_id, exc in failures:
        groups.setdefault(id(exc), (exc, []))[1].append(entry_id)
    return list(groups.values())


async def _raw_parse(msg: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream's own parser decodes every entry's body and encodes the batch again as
    JSON, about a fifth of a busy consumer's time, before `decode_entry` decodes the raw
    fields once more (and an entry it could not decode, say non-UTF-8 bytes, would stay
    pending for ever). Handlers here read the raw fields only, so the message is built
    around them with an empty body, by the parser FastStream gave (FastStream is pinned
    below 0.8; test_entry_faststream_cannot_decode_is_dead_lettered_not_stuck fails if
    FastStream decodes entries again)."""
    parser: Any = cast(Any, original).__self__
    message_id = uuid.uuid4().hex
    return parser._build_message(
        raw_message=msg,
        body=b"",
        path={},
        headers={},
        batch_headers=[],
        reply_to="",
        content_type=None,
        message_id=message_id,
        correlation_id=message_id,
    )


def _fields(raw: Any) -> Any:
    """The entries' fields as Redis returned them."""
    return raw["data"]
