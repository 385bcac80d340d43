"""The escalator's durable state in Redis: per-incident state, timers, fired steps.

* `jarvis:escalator:due` — sorted set of pending time steps, scored by due time
  (member `incident|severity|step|level`); every replica's tick reads it.
* `jarvis:escalator:incident:<id>` — hash: policy snapshot, severity, opened_at, highest
  level reached, ack and resolve state, triggers waiting for the incident to be known.
* `jarvis:escalator:timers:<id>` — the incident's members of the due set.
* `jarvis:escalator:fired:<id>` — step ids already fired (time and immediate).

Every change that decides whether an escalation happens is one Lua script, so a step
fires exactly once across restarts and replicas, and never after an ack holds it
back or the incident resolves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from shared.bus import as_text
from shared.events import Severity
from shared.streams import ESCALATIONS

__all__ = ["DUE_KEY", "DueTimer", "EscalatorStore", "IncidentState", "PlannedTimer"]

DUE_KEY = "jarvis:escalator:due"
_RESOLVED_TTL_S = 7 * 24 * 3600
_BATCH = 500

# KEYS: state, timers, due, fired. ARGV: severity, severity_at, opened_at, service, title,
# then (member, due, step) triples. Stale (older severity) or resolved: nothing changes.
_RESCHEDULE = """
if redis.call('HGET', KEYS[1], 'resolved') == '1' then return -1 end
local prev = redis.call('HGET', KEYS[1], 'severity_at')
if prev and tonumber(prev) > tonumber(ARGV[2]) then return -2 end
redis.call('HSETNX', KEYS[1], 'opened_at', ARGV[3])
redis.call('HSET', KEYS[1], 'severity', ARGV[1], 'severity_at', ARGV[2],
  'service', ARGV[4], 'title', ARGV[5])
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('ZREM', KEYS[3], m) end
redis.call('DEL', KEYS[2])
local n = 0
for i = 6, #ARGV, 3 do
  if redis.call('SISMEMBER', KEYS[4], ARGV[i + 2]) == 0 then
    redis.call('ZADD', KEYS[3], ARGV[i + 1], ARGV[i])
    redis.call('SADD', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n
"""

# KEYS: due, stream, state, fired, timers. ARGV: member, step, level, event json.
# 1 fired; 0 someone else took it; <0 dropped (resolved, superseded, held by an ack, fired).
_FIRE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SREM', KEYS[5], ARGV[1])
local s = redis.call('HMGET', KEYS[3], 'resolved', 'reached', 'ack_level', 'ack_ceiling')
local level = tonumber(ARGV[3])
if s[1] == '1' then return -1 end
if s[2] and level <= tonumber(s[2]) then return -2 end
if s[3] and (level <= tonumber(s[3]) or level > tonumber(s[4])) then return -3 end
if redis.call('SADD', KEYS[4], ARGV[2]) == 0 then return -4 end
redis.call('HSET', KEYS[3], 'reached', level)
redis.call('XADD', KEYS[2], '*', '__data__', ARGV[4])
return 1
"""

# KEYS: stream, state, fired. ARGV: step, level, event json.
_IMMEDIATE = """
if redis.call('HGET', KEYS[2], 'resolved') == '1' then return -1 end
redis.call('HDEL', KEYS[2], 'pending:' .. ARGV[1])
if redis.call('SADD', KEYS[3], ARGV[1]) == 0 then return 0 end
local reached = tonumber(redis.call('HGET', KEYS[2], 'reached') or '0')
if tonumber(ARGV[2]) > reached then redis.call('HSET', KEYS[2], 'reached', ARGV[2]) end
redis.call('XADD', KEYS[1], '*', '__data__', ARGV[3])
return 1
"""

# KEYS: state, timers, due. ARGV: extra levels. The first ack wins; returns the
# acknowledged level (0 when the incident is resolved).
_ACK = """
if redis.call('HGET', KEYS[1], 'resolved') == '1' then return 0 end
local done = redis.call('HGET', KEYS[1], 'ack_level')
if done then return tonumber(done) end
local ack = math.max(tonumber(redis.call('HGET', KEYS[1], 'reached') or '0'), 1)
local ceiling = ack + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'ack_level', ack, 'ack_ceiling', ceiling)
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local level = tonumber(string.match(m, '|(%d+)$'))
  if level <= ack or level > ceiling then
    redis.call('ZREM', KEYS[3], m)
    redis.call('SREM', KEYS[2], m)
  end
end
return ack
"""

# KEYS: due. ARGV: incident ids. For each, its earliest pending timer: {member, due} or false.
_NEXT = """
local out = {}
for i, id in ipairs(ARGV) do
  local best, first = nil, false
  for _, m in ipairs(redis.call('SMEMBERS', 'jarvis:escalator:timers:' .. id)) do
    local due = tonumber(redis.call('ZSCORE', KEYS[1], m))
    if due and (best == nil or due < best) then best, first = due, m end
  end
  out[i] = first and {first, string.format('%.3f', best)} or false
end
return out
"""

# KEYS: state, timers, due, fired, services. ARGV: ttl. Returns 1 the first time.
_RESOLVE = """
local first = redis.call('HGET', KEYS[1], 'resolved') ~= '1'
redis.call('HSET', KEYS[1], 'resolved', '1')
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do redis.call('ZREM', KEYS[3], m) end
redis.call('DEL', KEYS[2])
for i = 1, 5 do
  if i ~= 2 and i ~= 3 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
end
if first then return 1 end
return 0
"""


@dataclass(frozen=True)
class PlannedTimer:
    step: str
    level: int
    due_at: datetime


@dataclass(frozen=True)
class DueTimer:
    """A timer read from the due set."""

    member: str
    incident_id: str
    severity: Severity
    step: str
    level: int

    @classmethod
    def parse(cls, member: str) -> DueTimer:
        incident_id, severity, step, level = member.rsplit("|", 3)
        return cls(member, incident_id, Severity(severity), step, int(level))


@dataclass(frozen=True)
class IncidentState:
    """What the escalator knows about an incident."""

    known: bool
    severity: Severity | None
    opened_at: datetime | None
    reached: int
    ack: tuple[int, int] | None
    resolved: bool
    policy_json: str | None
    service: str
    title: str
    pending: dict[str, str]


class EscalatorStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._reschedule = redis.register_script(_RESCHEDULE)
        self._fire = redis.register_script(_FIRE)
        self._immediate = redis.register_script(_IMMEDIATE)
        self._ack = redis.register_script(_ACK)
        self._resolve = redis.register_script(_RESOLVE)
        self._next = redis.register_script(_NEXT)

    @staticmethod
    def state_key(incident_id: str) -> str:
        return f"jarvis:escalator:incident:{incident_id}"

    @staticmethod
    def _timers(incident_id: str) -> str:
        return f"jarvis:escalator:timers:{incident_id}"

    @staticmethod
    def _fired(incident_id: str) -> str:
        return f"jarvis:escalator:fired:{incident_id}"

    @staticmethod
    def _services(incident_id: str) -> str:
        return f"jarvis:escalator:services:{incident_id}"

    async def snapshot_policy(self, incident_id: str, policy_json: str) -> str:
        """Store the policy the first time an incident is seen; return the one in force."""
        key = self.state_key(incident_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hsetnx(key, "policy", policy_json)
        pipe.hget(key, "policy")
        _, stored = await pipe.execute()
        return as_text(stored)

    async def add_services(self, incident_id: str, services: set[str]) -> set[str]:
        """Union the incident's failing services; return them all."""
        key = self._services(incident_id)
        pipe = self._redis.pipeline(transaction=True)
        if services:
            pipe.sadd(key, *sorted(services))
        pipe.smembers(key)
        result = await pipe.execute()
        return {as_text(s) for s in result[-1]}

    async def state(self, incident_id: str) -> IncidentState:
        raw = await self._redis.hgetall(self.state_key(incident_id))
        data = {as_text(k): as_text(v) for k, v in raw.items()}
        ack = None
        if "ack_level" in data:
            ack = (int(data["ack_level"]), int(data["ack_ceiling"]))
        return IncidentState(
            known="severity" in data,
            severity=Severity(data["severity"]) if "severity" in data else None,
            opened_at=_from_ts(data["opened_at"]) if "opened_at" in data else None,
            reached=int(data.get("reached", 0)),
            ack=ack,
            resolved=data.get("resolved") == "1",
            policy_json=data.get("policy"),
            service=data.get("service", ""),
            title=data.get("title", ""),
            pending={k[8:]: v for k, v in data.items() if k.startswith("pending:")},
        )

    async def fired(self, incident_id: str) -> frozenset[str]:
        return frozenset(as_text(s) for s in await self._redis.smembers(self._fired(incident_id)))

    async def reschedule(
        self,
        incident_id: str,
        *,
        severity: Severity,
        severity_at: datetime,
        opened_at: datetime,
        service: str,
        title: str,
        timers: list[PlannedTimer],
    ) -> int:
        """Replace the incident's pending timers; <0 when the change is stale or resolved."""
        args: list[str | float] = [
            severity.value,
            severity_at.timestamp(),
            opened_at.timestamp(),
            service,
            title,
        ]
        for t in timers:
            args += [f"{incident_id}|{severity.value}|{t.step}|{t.level}", t.due_at.timestamp()]
            args.append(t.step)
        keys = [
            self.state_key(incident_id),
            self._timers(incident_id),
            DUE_KEY,
            self._fired(incident_id),
        ]
        return int(await self._reschedule(keys=keys, args=args))

    async def due(self, now: datetime) -> list[DueTimer]:
        raw = await self._redis.zrangebyscore(DUE_KEY, "-inf", now.timestamp(), start=0, num=_BATCH)
        return [DueTimer.parse(as_text(m)) for m in raw]

    async def fire(self, timer: DueTimer, event_json: str) -> int:
        keys = [
            DUE_KEY,
            ESCALATIONS.key,
            self.state_key(timer.incident_id),
            self._fired(timer.incident_id),
            self._timers(timer.incident_id),
        ]
        args: list[str | int] = [timer.member, timer.step, timer.level, event_json]
        return int(await self._fire(keys=keys, args=args))

    async def fire_immediate(self, incident_id: str, step: str, level: int, event_json: str) -> int:
        keys = [ESCALATIONS.key, self.state_key(incident_id), self._fired(incident_id)]
        return int(await self._immediate(keys=keys, args=[step, level, event_json]))

    async def remember_trigger(self, incident_id: str, step: str, reason: str) -> None:
        """Keep a trigger that came before the incident's severity; fired when it comes."""
        await self._redis.hsetnx(self.state_key(incident_id), f"pending:{step}", reason)

    async def acknowledge(self, incident_id: str, extra_levels: int) -> int:
        keys = [self.state_key(incident_id), self._timers(incident_id), DUE_KEY]
        return int(await self._ack(keys=keys, args=[extra_levels]))

    async def resolve(self, incident_id: str) -> bool:
        keys = [
            self.state_key(incident_id),
            self._timers(incident_id),
            DUE_KEY,
            self._fired(incident_id),
            self._services(incident_id),
        ]
        return bool(int(await self._resolve(keys=keys, args=[_RESOLVED_TTL_S])))

    async def next_due(self, incident_ids: list[str]) -> dict[str, tuple[int, datetime]]:
        """Each incident's next time step (level, when), for those that have one pending:
        what the operator page shows. Read-only, one round trip."""
        if not incident_ids:
            return {}
        found = await self._next(keys=[DUE_KEY], args=incident_ids)
        out: dict[str, tuple[int, datetime]] = {}
        for incident_id, hit in zip(incident_ids, found, strict=True):
            if hit:
                timer = DueTimer.parse(as_text(hit[0]))
                out[incident_id] = (timer.level, _from_ts(as_text(hit[1])))
        return out

    async def pending_count(self) -> int:
        return int(await self._redis.zcard(DUE_KEY))


def _from_ts(value: str) -> datetime:
    return datetime.fromtimestamp(float(value), UTC)
