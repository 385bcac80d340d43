"""The consumer layer's public face: what a handler raises, how a stream entry becomes an
event, and the consumer's metrics. Every service reads its streams through
`Runtime.consume` (the consumer itself is shared/stream_consumer.py, its Redis commands
shared/stream_group.py): our own small layer over redis-py, documented in docs/delivery.md.
FastStream is not in the consuming path; `decode_entry` reads its public binary format.

* a group is created from the start of its stream (id 0) before anything reads;
* new entries are read in batches (XREADGROUP) and acknowledged in batches (XACK), each
  only after its handler succeeded;
* while a handler works on entries, or waits to retry them, a heartbeat keeps them
  claimed: only a dead consumer's entries are reclaimed (XAUTOCLAIM after
  `reclaim_idle_ms`), and a live one never has an entry run twice;
* `Retryable` (a dependency is down) is retried in place with capped, jittered backoff
  for as long as it lasts, never counted, logged once per outage; meanwhile this consumer
  reads nothing new (backpressure);
* any other handler failure leaves the entry pending with the error in its history: it is
  retried by whoever reclaims it, and dead-lettered after `max_deliveries` failures (or
  after 10 × `max_deliveries` deliveries: an entry that keeps killing its consumer);
* an entry that cannot be decoded is dead-lettered at once; a deleted or trimmed entry
  that was pending is acknowledged and counted (`result="deleted"`);
* a consumer group lost with Redis' data is recreated and reading resumes.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from faststream.redis import BinaryMessageFormatV1
from prometheus_client import Counter, Gauge, Histogram

from shared.bus import DATA_FIELD
from shared.events import Event, parse_event
from shared.ids import uuid5_text
from shared.stream_group import ensure_group, id_ms
from shared.streams import StreamSpec

__all__ = [
    "BACKLOG",
    "CONSUMED",
    "HANDLE_SECONDS",
    "LAG",
    "OLDEST_AGE",
    "PENDING",
    "Admission",
    "BatchHandler",
    "Handler",
    "InvalidEntry",
    "Retryable",
    "decode_entry",
    "derived_event_id",
    "ensure_group",
    "note_reader",
    "shared_stream",
]

Handler = Callable[[Event], Awaitable[None]]
BatchHandler = Callable[[list[Event]], Awaitable[None]]
# What a stream's readers make of a decoded entry before handling it (its fields and id
# at hand): `shared.envelope.AlertAdmission` on jarvis:alerts.
Admission = Callable[[Event, dict[bytes, bytes], str], Event]

_DATA = DATA_FIELD.encode()
_BINARY_MAGIC = BinaryMessageFormatV1.IDENTITY_HEADER
# (stream, its event types, entry id) → (the entry's __data__, its event): see decode_entry.
# Oldest first out (FIFO): an OrderedDict pops its first item in O(1), where a dict asked for
# `next(iter(...))` walks over the holes its earlier deletions left (about 1 µs an entry).
_DECODED: OrderedDict[tuple[str, tuple[type[Event], ...], str], tuple[bytes, Event]] = OrderedDict()
_DECODED_MAX = 4096
# Stream key → the groups that read it in this process. Decodings are kept only for a
# stream that several groups read here: in a process of one service (`jarvis-ir serve`)
# no other group would ever ask, and 4,096 kept events were most of what the recorder's
# full collections scanned (issue 16: 20-25 ms gen2 passes, gc.callbacks).
_READERS: dict[str, set[str]] = {}
_ENTRY_NS = uuid.UUID("5b0e6a8e-2f8c-4d61-9a43-7c1f0d2e9b57")

CONSUMED = Counter(
    "jarvis_events_consumed_total",
    "Stream entries handled, by group, stream and result (ok, error, retry, dead_letter, deleted).",
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
    "Entries of the stream not yet delivered to the group "
    "(XINFO lag; counted up to 10,000 where Redis 6.2 does not report it).",
    ["group", "stream"],
)
PENDING = Gauge(
    "jarvis_consumer_pending",
    "Entries delivered to the group and not yet acknowledged.",
    ["group", "stream"],
)
BACKLOG = Gauge(
    "jarvis_consumer_backlog",
    "Entries the group has not acknowledged: pending plus not yet delivered.",
    ["group", "stream"],
)
OLDEST_AGE = Gauge(
    "jarvis_consumer_oldest_pending_age_seconds",
    "Age of the oldest entry the group has not acknowledged (pending or not yet delivered).",
    ["group", "stream"],
)


class InvalidEntry(ValueError):
    """A stream entry that is not a valid event; the message is the reason."""


def note_reader(stream: str, group: str) -> None:
    """`group` reads `stream` in this process (a consumer says so when it is made)."""
    _READERS.setdefault(stream, set()).add(group)


def shared_stream(stream: str) -> bool:
    """Whether several groups read `stream` in this process: only then is an entry's
    decoding kept for the next group (`decode_entry(..., keep=True)`)."""
    return len(_READERS.get(stream, ())) > 1


def derived_event_id(stream: str, entry_id: str) -> str:
    """The event id of an entry that brings none: the same at every delivery of the entry."""
    return uuid5_text(_ENTRY_NS, f"{stream}/{entry_id}")


def decode_entry(
    fields: dict[bytes, bytes],
    spec: StreamSpec,
    entry_id: str | None = None,
    *,
    keep: bool = True,
) -> Event:
    """Turn a raw stream entry into an event, or raise InvalidEntry with the reason.

    Accepts `__data__` holding the event JSON (what we and other systems write), the same
    wrapped in FastStream's own binary format, or flat string fields without `__data__`.
    An entry without `event_id` gets `derived_event_id(stream, entry_id)`, and one without
    `occurred_at` the time in its entry id (when Redis appended it), so every delivery, to
    every group, decodes to the same event. On a stream that carries several event types
    an entry must name its `event_type`; one that carries a single type defaults to it.

    Where several groups read one stream in one process (`jarvis-ir up`), the entry is
    decoded once: the (frozen) event is kept for the next group that reads the same entry
    with the same `__data__` bytes. Invalid entries are not kept: each group refuses them.
    With `keep=False` (no other group of this process reads the stream: `shared_stream`)
    the event is neither looked up nor kept.
    """
    raw = fields.get(_DATA)
    if raw is None or entry_id is None or not keep:
        return _decode(fields, spec, entry_id)
    cache_key = (spec.key, spec.events, entry_id)
    known = _DECODED.get(cache_key)
    if known is not None and known[0] == raw:
        return known[1]
    event = _decode(fields, spec, entry_id)
    if len(_DECODED) >= _DECODED_MAX:
        _DECODED.popitem(last=False)  # the oldest
    _DECODED[cache_key] = (raw, event)
    return event


def _decode(fields: dict[bytes, bytes], spec: StreamSpec, entry_id: str | None) -> Event:
    try:
        data = _entry_data(fields)
        if len(spec.events) > 1 and not data.get("event_type"):
            names = ", ".join(c.EVENT_TYPE for c in spec.events)
            raise InvalidEntry(f"event_type: missing (expected one of {names})")
        if entry_id is not None:
            if not data.get("event_id"):
                data["event_id"] = derived_event_id(spec.key, entry_id)
            if not data.get("occurred_at"):
                data["occurred_at"] = datetime.fromtimestamp(id_ms(entry_id) / 1000, UTC)
        return parse_event(data, spec.events)
    except RecursionError as exc:
        raise InvalidEntry("nested too deeply to decode") from exc
    except InvalidEntry:
        raise
    except ValueError as exc:
        raise InvalidEntry(_reason(exc)) from exc


def _entry_data(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The entry's fields as one JSON-like object."""
    raw = fields.get(_DATA)
    data: Any
    if raw is not None:
        data = _loads(_unwrap(raw))
        if type(data) is dict and type(data.get("data")) is str:
            # FastStream's JSON envelope ({"data": "<the JSON>", "headers": …}): unwrapped
            # as FastStream itself does it, for any object whose "data" is text.
            data = _loads(data["data"].encode())
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
    return dict(data)


def _unwrap(raw: bytes) -> bytes:
    """The body of an entry in FastStream's binary format; anything else as it is.
    (`BinaryMessageFormatV1.parse` on plain JSON parses it twice to find out it is not an
    envelope: a third of a consumer's decoding time, so it is asked only about its own.)"""
    if raw.startswith(_BINARY_MAGIC):
        body, _headers = BinaryMessageFormatV1.parse(raw)
        return body
    return raw


def _loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidEntry(f"__data__: not valid JSON ({exc})") from exc


def _reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            loc = ".".join(str(p) for p in err.get("loc", ())) or "event"
            parts.append(f"{loc}: {err.get('msg')}")
        return "; ".join(parts)
    return str(exc)


class Retryable(Exception):
    """A dependency is unavailable (database down, …): retry later, and do not count the
    failure against the entry, so an outage never sends good events to the dead-letter stream."""
