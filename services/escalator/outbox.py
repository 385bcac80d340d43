"""The escalator's delivery schedule in Redis: every notification not yet final, with a
lease, so each is sent by exactly one replica at a time and none is lost to a crash.

* `jarvis:escalator:outbox` — sorted set of delivery keys, scored by when the next try is
  due. While a replica tries, the score is the end of its lease: a replica that dies
  mid-try leaves the entry to come due again when the lease runs out, and any replica's
  retry loop takes it then. Scores are Redis' own clock (TIME, in the scripts), so
  replicas on hosts whose clocks differ agree on who holds what.
* `jarvis:escalator:outbox:data` — hash, key → the pending delivery (JSON).
* `jarvis:escalator:outbox:owner` — hash, key → the token of the replica holding it.
* `jarvis:escalator:sent:<incident>:<step>:<channel>` — the final `NotificationSent`,
  written together with its event on `jarvis:incidents` (one script).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import TypeAdapter
from redis.asyncio import Redis

from services.escalator.messages import Notification
from shared.bus import as_text
from shared.streams import INCIDENTS

__all__ = ["OUTBOX_KEY", "Enqueued", "Outbox", "PendingDelivery"]

OUTBOX_KEY = "jarvis:escalator:outbox"
_DATA = f"{OUTBOX_KEY}:data"
_OWNER = f"{OUTBOX_KEY}:owner"
_DONE_TTL_S = 30 * 24 * 3600
_NOTIFICATION = TypeAdapter(Notification)

_NOW = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# KEYS: sent, outbox, data, owner. ARGV: key, payload, lease seconds, token.
# 2: already final; 1: already in the outbox (waiting for a retry, or being tried);
# 0: added and held by the caller for the lease.
_ENQUEUE = (
    _NOW
    + """
local final = redis.call('GET', KEYS[1])
if final and string.sub(final, 1, 1) == '{' then return 2 end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 1 end
redis.call('ZADD', KEYS[2], now() + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
return 0
"""
)

# KEYS: outbox, data, owner. ARGV: lease seconds, token, limit. Takes the due keys by
# moving their score to the lease end; returns key, payload pairs.
_TAKE_DUE = (
    _NOW
    + """
local t = now()
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t, 'LIMIT', 0, ARGV[3])
local out = {}
for _, key in ipairs(due) do
  local payload = redis.call('HGET', KEYS[2], key)
  if payload then
    redis.call('ZADD', KEYS[1], t + tonumber(ARGV[1]), key)
    redis.call('HSET', KEYS[3], key, ARGV[2])
    out[#out + 1] = key
    out[#out + 1] = payload
  else
    redis.call('ZREM', KEYS[1], key)
    redis.call('HDEL', KEYS[3], key)
  end
end
return out
"""
)

# KEYS: outbox, data, owner. ARGV: key, seconds until the next try, payload, token. 0 when
# another replica took the key meanwhile (this one overran its lease): theirs is newer.
_RESCHEDULE = (
    _NOW
    + """
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[4] then return 0 end
redis.call('ZADD', KEYS[1], now() + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
"""
)

# KEYS: sent, outbox, data, owner, stream. ARGV: key, NotificationSent JSON, ttl.
# 1 when this call recorded the outcome (and appended the event), 0 when one was there.
_FINISH = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
local final = redis.call('GET', KEYS[1])
if final and string.sub(final, 1, 1) == '{' then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
redis.call('XADD', KEYS[5], '*', '__data__', ARGV[2])
return 1
"""


@dataclass(frozen=True)
class PendingDelivery:
    """One delivery as the outbox keeps it between tries."""

    channel: str
    notification: Notification
    follow: dict[str, Any]  # envelope of the NotificationSent (incident, causation)
    first_at: float
    attempts: int = 0
    detail: str = ""

    def to_json(self) -> str:
        body = {
            "channel": self.channel,
            "notification": json.loads(_NOTIFICATION.dump_json(self.notification)),
            "follow": self.follow,
            "first_at": self.first_at,
            "attempts": self.attempts,
            "detail": self.detail,
        }
        return json.dumps(body)

    @classmethod
    def from_json(cls, raw: str) -> PendingDelivery:
        body = json.loads(raw)
        return cls(
            channel=body["channel"],
            notification=_NOTIFICATION.validate_python(body["notification"]),
            follow=body["follow"],
            first_at=float(body["first_at"]),
            attempts=int(body["attempts"]),
            detail=str(body["detail"]),
        )


class Enqueued(Enum):
    HELD = 0  # the caller holds it: try now
    QUEUED = 1  # the outbox has it already
    FINAL = 2  # delivered or given up before


class Outbox:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._enqueue = redis.register_script(_ENQUEUE)
        self._take_due = redis.register_script(_TAKE_DUE)
        self._reschedule = redis.register_script(_RESCHEDULE)
        self._finish = redis.register_script(_FINISH)

    async def enqueue(self, key: str, payload: str, lease_s: float, token: str) -> Enqueued:
        """Add a new delivery, held by `token` for `lease_s`, unless it is known already."""
        state = await self._enqueue(
            keys=[key, OUTBOX_KEY, _DATA, _OWNER], args=[key, payload, lease_s, token]
        )
        return Enqueued(int(state))

    async def take_due(self, lease_s: float, token: str, limit: int) -> list[tuple[str, str]]:
        """Hold up to `limit` due deliveries for `lease_s`; (key, payload) pairs."""
        flat = await self._take_due(keys=[OUTBOX_KEY, _DATA, _OWNER], args=[lease_s, token, limit])
        return [(as_text(flat[i]), as_text(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def reschedule(self, key: str, wait_s: float, payload: str, token: str) -> bool:
        """Put a held delivery back, due in `wait_s`; False if it was taken over."""
        return bool(
            await self._reschedule(
                keys=[OUTBOX_KEY, _DATA, _OWNER], args=[key, wait_s, payload, token]
            )
        )

    async def finish(self, key: str, record_json: str) -> bool:
        """Store the final NotificationSent and append it to the timeline, once."""
        recorded = await self._finish(
            keys=[key, OUTBOX_KEY, _DATA, _OWNER, INCIDENTS.key],
            args=[key, record_json, _DONE_TTL_S],
        )
        return bool(recorded)

    async def waiting(self) -> int:
        return int(await self._redis.zcard(OUTBOX_KEY))
