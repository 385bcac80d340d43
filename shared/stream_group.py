"""One consumer of one Redis stream consumer group, in redis-py commands: what the reliable
consumer (shared/consumer.py) is built from.

* `read_new`: XREADGROUP `>` in batches; `reclaim`: XAUTOCLAIM of entries idle too long,
  with the deleted entries reported either way Redis answers (7: a list of their ids,
  and they leave the pending list; 6.2: a nil in their place, and they stay pending for
  ever unless acknowledged — found here by their absence from the stream);
* `keep`: the heartbeat — XCLAIM … JUSTID resets the idle time of the entries this
  consumer is still working on, in one Lua script that leaves alone any entry another
  consumer has taken meanwhile, so only a dead consumer's entries are ever reclaimed;
* `dead_letter`: record an entry on `jarvis:dead-letter` and acknowledge it, atomically,
  at most once per (stream, entry, group), or per (stream, entry) for an invalid one;
* `add_history`/`history`: the handler errors of an entry in this group, kept a day
  (`jarvis:history:<group>:<stream>:<entry id>`);
* `stats`: the group's backlog and the age of its oldest unacknowledged entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.bus import as_text
from shared.events import utcnow
from shared.streams import DEAD_LETTER

__all__ = [
    "Entry",
    "GroupStats",
    "Reclaimed",
    "StreamGroup",
    "ensure_group",
    "id_ms",
    "parse_id",
]

Entry = tuple[str, dict[bytes, bytes]]

_SEEN_TTL_S = 24 * 3600
_HISTORY_TTL_S = 24 * 3600
_COUNT_CAP = 10_000  # entries counted one by one where Redis 6.2 reports no lag

# KEYS: stream. ARGV: group, consumer, ids… Resets the idle time of each id still pending
# on this consumer (XCLAIM JUSTID does not count a delivery); returns the ids it no longer
# holds (acknowledged, or taken over by another consumer).
_KEEP = """
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""

# KEYS: seen marker, dead-letter stream, source stream. ARGV: group, entry id, marker ttl,
# dead-letter maxlen, then the record's field/value pairs. XADD comes before the marker: if
# it fails, nothing is written and the entry stays pending, so a retry records it.
_DEAD_LETTER = """
local recorded = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
  redis.call('SET', KEYS[1], '1', 'EX', ARGV[3])
  recorded = 1
end
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
return recorded
"""

# KEYS: stream. ARGV: exclusive start id, cap. Entries after the start, counted up to cap.
_COUNT_AFTER = """
local n, cursor, cap = 0, ARGV[1], tonumber(ARGV[2])
while n < cap do
  local chunk = redis.call('XRANGE', KEYS[1], '(' .. cursor, '+', 'COUNT', 1000)
  if #chunk == 0 then break end
  n = n + #chunk
  cursor = chunk[#chunk][1]
end
return math.min(n, cap)
"""


def parse_id(entry_id: str | bytes) -> tuple[int, int]:
    """`"1700000000000-3"` → (1700000000000, 3), for ordering ids."""
    ms, _, seq = as_text(entry_id).partition("-")
    return int(ms), int(seq or 0)


def id_ms(entry_id: str | bytes) -> int:
    """The millisecond timestamp in a stream id (when Redis appended the entry)."""
    return parse_id(entry_id)[0]


async def ensure_group(redis: Redis, stream: str, group: str) -> bool:
    """Create the group at the start of the stream (and the stream); True if it was missing."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return False
        raise
    return True


@dataclass(frozen=True)
class Reclaimed:
    """One XAUTOCLAIM step: where to go on, what was claimed, what no longer exists."""

    cursor: str
    entries: list[Entry]
    deleted: list[str]


@dataclass(frozen=True)
class GroupStats:
    pending: int
    lag: int  # not yet delivered to the group
    oldest_age_s: float  # of the oldest entry not yet acknowledged; 0 when none

    @property
    def backlog(self) -> int:
        return self.pending + self.lag


class StreamGroup:
    """`consumer` reading `stream` through `group`."""

    def __init__(self, redis: Redis, stream: str, group: str, consumer: str) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self._keep = redis.register_script(_KEEP)
        self._dead_letter = redis.register_script(_DEAD_LETTER)
        self._count_after = redis.register_script(_COUNT_AFTER)

    async def ensure(self) -> bool:
        return await ensure_group(self.redis, self.stream, self.group)

    async def read_new(self, count: int, block_ms: int) -> list[Entry]:
        reply: Any = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        entries: list[Entry] = []
        for _stream, items in reply or []:  # RESP2: [[stream, [(id, fields), …]]]
            entries += [(as_text(i), fields) for i, fields in items if i is not None]
        return entries

    async def reclaim(self, min_idle_ms: int, start: str, count: int) -> Reclaimed:
        reply = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_ms, start, count=count
        )
        cursor = as_text(reply[0])
        claimed: list[tuple[Any, Any]] = reply[1]
        deleted = [as_text(i) for i in reply[2]] if len(reply) > 2 else []
        entries = [(as_text(i), f) for i, f in claimed if i is not None]
        if len(entries) < len(claimed):  # Redis 6.2: nils for deleted entries, still pending
            end = "+" if cursor == "0-0" else f"({cursor}"
            gone = await self._missing_of_mine(start, end, {i for i, _ in entries})
            if gone:
                await self.ack(gone)
            deleted += gone
        return Reclaimed(cursor, entries, deleted)

    async def _missing_of_mine(self, start: str, end: str, seen: set[str]) -> list[str]:
        """Ids pending on this consumer in [start, end] whose entry is gone from the stream."""
        mine = await self.redis.xpending_range(
            self.stream, self.group, start, end, count=10_000, consumername=self.consumer
        )
        candidates = [as_text(p["message_id"]) for p in mine]
        candidates = [c for c in candidates if c not in seen]
        if not candidates:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in candidates:
            pipe.xrange(self.stream, entry_id, entry_id, count=1)
        found = await pipe.execute()
        return [c for c, rows in zip(candidates, found, strict=True) if not rows]

    async def deliveries(self, entry_ids: Sequence[str]) -> dict[str, int]:
        """How often each entry was delivered to the group (XPENDING's counter)."""
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
        counts: dict[str, int] = {}
        for entry_id, rows in zip(entry_ids, await pipe.execute(), strict=True):
            counts[entry_id] = int(rows[0]["times_delivered"]) if rows else 0
        return counts

    async def keep(self, entry_ids: Sequence[str]) -> list[str]:
        """Heartbeat; returns the ids this consumer no longer holds."""
        if not entry_ids:
            return []
        lost = await self._keep(keys=[self.stream], args=[self.group, self.consumer, *entry_ids])
        return [as_text(i) for i in lost]

    async def ack(self, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            await self.redis.xack(self.stream, self.group, *entry_ids)

    def _history_key(self, entry_id: str) -> str:
        return f"jarvis:history:{self.group}:{self.stream}:{entry_id}"

    async def add_history(self, entry_ids: Sequence[str], line: str) -> None:
        """Remember a handler failure of each entry (the count decides when to give up)."""
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in entry_ids:
            pipe.rpush(self._history_key(entry_id), line[:2000])
            pipe.expire(self._history_key(entry_id), _HISTORY_TTL_S)
        await pipe.execute()

    async def history(self, entry_id: str) -> list[str]:
        return [as_text(h) for h in await self.redis.lrange(self._history_key(entry_id), 0, -1)]

    async def dead_letter(
        self,
        entry_id: str,
        fields: Mapping[Any, Any],
        reason: str,
        *,
        maxlen: int,
        deliveries: int = 1,
        history: Sequence[str] = (),
        every_group: bool = False,
    ) -> bool:
        """Record the entry on the dead-letter stream and acknowledge it; True if this call
        recorded it. A group that gives up on an entry records it once for itself; an entry
        that cannot be decoded is the same for every group (`every_group`), so the first
        group to meet it records it for all of them."""
        payload = {as_text(k): as_text(v) for k, v in fields.items()}
        record = {
            "stream": self.stream,
            "entry_id": entry_id,
            "group": self.group,
            "reason": reason[:4000],
            "deliveries": str(deliveries),
            "dead_at": utcnow().isoformat(),
            "payload": json.dumps(payload)[:65536],
            "history": json.dumps(list(history)),
        }
        flat = [part for pair in record.items() for part in pair]
        whose = "*" if every_group else self.group
        seen = f"{DEAD_LETTER}:seen:{self.stream}:{whose}:{entry_id}"
        recorded = await self._dead_letter(
            keys=[seen, DEAD_LETTER, self.stream],
            args=[self.group, entry_id, _SEEN_TTL_S, maxlen, *flat],
        )
        return bool(recorded)

    async def stats(self) -> GroupStats | None:
        """Backlog and oldest unacknowledged age; None when the stream or group is gone."""
        try:
            groups = await self.redis.xinfo_groups(self.stream)
            stream = await self.redis.xinfo_stream(self.stream)
        except ResponseError:
            return None
        info = next((g for g in groups if as_text(g["name"]) == self.group), None)
        if info is None:
            return None
        pending = int(info.get("pending") or 0)
        delivered = as_text(info["last-delivered-id"])
        last = as_text(stream["last-generated-id"])
        lag = info.get("lag")
        if delivered == last:
            lag = 0
        elif lag is None:  # Redis 6.2 does not say; 7 not always (after deletions)
            lag = await self._count_after(keys=[self.stream], args=[delivered, _COUNT_CAP])
        oldest: str | None = None
        if pending:
            summary = await self.redis.xpending(self.stream, self.group)
            oldest = as_text(summary["min"]) if summary.get("min") else None
        elif int(lag):
            first = await self.redis.xrange(self.stream, f"({delivered}", "+", count=1)
            oldest = as_text(first[0][0]) if first else None
        age = 0.0
        if oldest is not None:
            seconds, micros = await self.redis.time()
            age = max(0.0, seconds + micros / 1e6 - id_ms(oldest) / 1000)
        return GroupStats(pending, int(lag), age)
