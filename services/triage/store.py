"""Triage's state in Redis, read and written atomically (the port behind the decisions).

Every change is optimistic and serialisable: a read script returns the state together with
a version number; the decision is made in Python (pure); a commit script applies the writes
*and appends the resulting events to their streams* only if the version is unchanged, then
bumps it. So two replicas never both open an incident for one fingerprint or both request
one playbook step, and an event is published exactly when its state change is stored
(a transactional outbox: a crash between the two cannot happen).

A repeat of an alert that is already firing changes nothing and costs one read.

Keys (prefix `jarvis:triage:`): `version`; `incident:<id>` (JSON); `fp:<fingerprint>` → the
open incident; `open` (set of open incident ids); `last-seen` (hash id → epoch s of the
last firing alert); `quiet` (sorted set id → when its quiet period ends); `run:<id>`
(the playbook run, JSON); `done:<event_id>` (an alert already applied).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis

from services.triage.grouping import Incident
from services.triage.playbooks import Run
from shared.bus import DATA_FIELD, as_text
from shared.events import Event
from shared.streams import stream_for

__all__ = ["AlertView", "Batch", "Keys", "TriageStore"]

DONE_TTL_S = 7 * 24 * 3600
RESOLVED_TTL_S = 7 * 24 * 3600


class Keys:
    PREFIX = "jarvis:triage:"
    VERSION = PREFIX + "version"
    OPEN = PREFIX + "open"
    LAST_SEEN = PREFIX + "last-seen"
    QUIET = PREFIX + "quiet"

    @staticmethod
    def incident(incident_id: str) -> str:
        return f"{Keys.PREFIX}incident:{incident_id}"

    @staticmethod
    def fingerprint(fingerprint: str) -> str:
        return f"{Keys.PREFIX}fp:{fingerprint}"

    @staticmethod
    def run(incident_id: str) -> str:
        return f"{Keys.PREFIX}run:{incident_id}"

    @staticmethod
    def done(event_id: str) -> str:
        return f"{Keys.PREFIX}done:{event_id}"


# KEYS: version, done marker, fingerprint key. ARGV: now (epoch s), firing ("1"/"0").
# Returns {version, done, incident id, incident json, run json, [id, json, last seen]...}.
# A firing alert of a mapped fingerprint refreshes the incident's last-seen time.
_READ_ALERT = f"""
local version = redis.call('GET', KEYS[1]) or '0'
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {{version, 1}}
end
local id = redis.call('GET', KEYS[3])
if id then
  if ARGV[2] == '1' then
    redis.call('HSET', '{Keys.LAST_SEEN}', id, ARGV[1])
  end
  return {{version, 0, id, redis.call('GET', '{Keys.PREFIX}incident:' .. id),
    redis.call('GET', '{Keys.PREFIX}run:' .. id)}}
end
local out = {{version, 0, false, false, false}}
if ARGV[2] == '1' then
  for _, open_id in ipairs(redis.call('SMEMBERS', '{Keys.OPEN}')) do
    local doc = redis.call('GET', '{Keys.PREFIX}incident:' .. open_id)
    if doc then
      out[#out + 1] = open_id
      out[#out + 1] = doc
      out[#out + 1] = redis.call('HGET', '{Keys.LAST_SEEN}', open_id) or '0'
    end
  end
end
return out
"""

# KEYS: version, then keys to GET. Returns {version, value...}.
_READ = """
local out = {redis.call('GET', KEYS[1]) or '0'}
for i = 2, #KEYS do
  out[i] = redis.call('GET', KEYS[i]) or false
end
return out
"""

# KEYS: version. ARGV: expected version, JSON list of commands. All or nothing.
_COMMIT = """
local version = redis.call('GET', KEYS[1]) or '0'
if version ~= ARGV[1] then
  return 0
end
redis.call('INCR', KEYS[1])
for _, command in ipairs(cjson.decode(ARGV[2])) do
  redis.call(unpack(command))
end
return 1
"""


@dataclass
class AlertView:
    version: str
    done: bool
    mapped: Incident | None = None
    run: Run | None = None
    candidates: list[tuple[Incident, datetime]] = field(default_factory=list)


@dataclass
class Batch:
    """The writes and events of one commit, in order."""

    maxlen: int
    commands: list[list[str]] = field(default_factory=list)

    def set(self, key: str, value: str, ttl_s: int | None = None) -> None:
        self.commands.append(
            ["SET", key, value] + (["EX", str(ttl_s)] if ttl_s is not None else [])
        )

    def delete(self, *keys: str) -> None:
        if keys:
            self.commands.append(["DEL", *keys])

    def sadd(self, key: str, member: str) -> None:
        self.commands.append(["SADD", key, member])

    def srem(self, key: str, member: str) -> None:
        self.commands.append(["SREM", key, member])

    def hset(self, key: str, name: str, value: str) -> None:
        self.commands.append(["HSET", key, name, value])

    def hdel(self, key: str, name: str) -> None:
        self.commands.append(["HDEL", key, name])

    def zadd(self, key: str, member: str, score: float) -> None:
        self.commands.append(["ZADD", key, repr(score), member])

    def zrem(self, key: str, member: str) -> None:
        self.commands.append(["ZREM", key, member])

    def publish(self, event: Event) -> None:
        self.commands.append(
            [
                "XADD",
                stream_for(event).key,
                "MAXLEN",
                "~",
                str(self.maxlen),
                "*",
                DATA_FIELD,
                event.to_json(),
            ]
        )


class TriageStore:
    def __init__(self, redis: Redis, maxlen: int) -> None:
        self._redis = redis
        self._maxlen = maxlen
        self._read_alert = redis.register_script(_READ_ALERT)
        self._read = redis.register_script(_READ)
        self._commit = redis.register_script(_COMMIT)

    def batch(self) -> Batch:
        return Batch(self._maxlen)

    async def read_alert(
        self, event_id: str, fingerprint: str, firing: bool, now: datetime
    ) -> AlertView:
        res = await self._read_alert(
            keys=[Keys.VERSION, Keys.done(event_id), Keys.fingerprint(fingerprint)],
            args=[repr(now.timestamp()), "1" if firing else "0"],
        )
        version = as_text(res[0])
        if int(res[1]):
            return AlertView(version, True)
        view = AlertView(version, False)
        if res[2]:
            view.mapped = Incident.from_json(res[3]) if res[3] else None
            view.run = Run.from_json(res[4]) if res[4] else None
            return view
        rest = res[5:]
        for i in range(0, len(rest), 3):
            seen = datetime.fromtimestamp(float(as_text(rest[i + 2])), UTC)
            view.candidates.append((Incident.from_json(rest[i + 1]), seen))
        return view

    async def read(self, *keys: str) -> tuple[str, list[bytes | None]]:
        """The version and the values of `keys`, read at one instant."""
        res = await self._read(keys=[Keys.VERSION, *keys])
        return as_text(res[0]), [v if v else None for v in res[1:]]

    async def commit(self, version: str, batch: Batch) -> bool:
        """Apply the batch if nothing changed since `version` was read."""
        if not batch.commands:
            return True
        payload = json.dumps(batch.commands, separators=(",", ":"))
        return bool(int(await self._commit(keys=[Keys.VERSION], args=[version, payload])))

    async def due_quiet(self, now: datetime, limit: int = 100) -> Sequence[str]:
        due = await self._redis.zrangebyscore(
            Keys.QUIET, "-inf", now.timestamp(), start=0, num=limit
        )
        return [as_text(d) for d in due]

    async def open_count(self) -> int:
        return int(await self._redis.scard(Keys.OPEN))
