"""Trimming the event streams without ever deleting an entry some group still needs.

Events are appended without MAXLEN. Every `trim_interval_s`, a stream longer than
`consumer.stream_maxlen` is trimmed with XTRIM MINID below its *floor*: the oldest entry
any of its consumer groups has not acknowledged — its oldest pending entry, or, with
nothing pending, the entry after its last delivered one (undelivered entries are
unprocessed too). So a backlog is kept however long it grows; it shows as
`jarvis_consumer_backlog` next to `jarvis_stream_retention_entries` (the alert rule
JarvisResponderBacklogBeyondRetention). A stream without groups is not trimmed here.

Only groups that exist count: a service that has never started holds nothing back (each
service creates its groups at start, so start them all before the streams fill up).
`jarvis:dead-letter` has no groups; it is bounded by length when written
(`consumer.dead_letter_maxlen`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.bus import as_text
from shared.settings import ConsumerSettings
from shared.stream_group import parse_id

__all__ = ["safe_floor", "trim_forever", "trim_stream"]

log = logging.getLogger(__name__)

TRIMMED = Counter(
    "jarvis_stream_trimmed_entries_total",
    "Entries trimmed from a stream after every consumer group had acknowledged them.",
    ["stream"],
)
LENGTH = Gauge("jarvis_stream_length", "Entries in the stream (XLEN).", ["stream"])
RETENTION = Gauge(
    "jarvis_stream_retention_entries",
    "Length above which acknowledged entries are trimmed (consumer.stream_maxlen); a "
    "group's backlog beyond it is kept, and grows Redis' memory.",
    ["stream"],
)


async def safe_floor(redis: Redis, stream: str) -> str | None:
    """The oldest id some group still needs (entries below it may go); None when the
    stream has no groups or does not exist."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return None
    floors: list[str] = []
    for info in groups:
        if int(info.get("pending") or 0):
            summary = await redis.xpending(stream, info["name"])
            if summary.get("min"):
                floors.append(as_text(summary["min"]))
                continue
        ms, seq = parse_id(info["last-delivered-id"])
        floors.append(f"{ms}-{seq + 1}")  # everything up to the last delivered is done
    return min(floors, key=parse_id) if floors else None


async def trim_stream(redis: Redis, stream: str, maxlen: int) -> int:
    """Trim `stream` below its floor if it is longer than `maxlen`; entries removed."""
    length = int(await redis.xlen(stream))
    LENGTH.labels(stream).set(length)
    RETENTION.labels(stream).set(maxlen)
    if length <= maxlen:
        return 0
    floor = await safe_floor(redis, stream)
    if floor is None:
        return 0
    # `~`: whole radix-tree nodes only, never an entry at or above the floor.
    removed = int(await redis.xtrim(stream, minid=floor, approximate=True))
    if removed:
        TRIMMED.labels(stream).inc(removed)
        LENGTH.labels(stream).set(length - removed)
    return removed


async def trim_forever(redis: Redis, streams: Iterable[str], settings: ConsumerSettings) -> None:
    """The trimming loop of one process (several processes trimming is harmless)."""
    keys = sorted(set(streams))
    while True:
        for stream in keys:
            try:
                await trim_stream(redis, stream, settings.stream_maxlen)
            except Exception as exc:  # Redis restarting: next round
                log.debug("trimming %s failed: %s", stream, exc)
        await asyncio.sleep(settings.trim_interval_s)
