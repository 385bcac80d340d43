"""Triage's state in Redis, read and written atomically (the port behind the decisions).

Every change is optimistic and serialisable: a read script returns the state together with
a version number; the decision is made in Python (pure); a commit script applies the writes
*and appends the resulting events to their streams* only if the version is unchanged, then
bumps it. So two replicas never both open an incident for one fingerprint or both request
one playbook step, and an event is published exactly when its state change is stored
(a transactional outbox: a crash between the two cannot happen).

A repeat of an alert that is already firing changes nothing and costs its share of a read.

Alerts are read and committed a batch at a time: one read of everything the batch needs,
decisions made alert by alert on the state the previous ones left (`Snapshot`), one commit.
If another replica committed in between, the batch is split and retried.

Keys (prefix `jarvis:triage:`): `version`; `incident:<id>` (JSON, without its alerts);
`slots:<id>` (hash fingerprint → the fingerprint's latest word, JSON); `fp:<fingerprint>` →
the open incident; `svc:<service>` (set of the open incidents the service is in: the
candidates a new fingerprint of it or of a related service may join); `open` (set of open
incident ids); `last-seen` (hash id → epoch s of the last firing alert); `quiet` (sorted
set id → when its quiet period ends); `run:<id>` (the playbook run, JSON);
`done:<event_id>` (an alert already applied); `drills` (hash service → the DrillStarted
whose incident is still to open: the next incident of that service is the drill's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis.asyncio import Redis

from services.triage.grouping import AlertSlot, Change, Incident, Mapped
from services.triage.playbooks import Run
from shared.bus import DATA_FIELD, as_text
from shared.events import Event
from shared.streams import stream_for

__all__ = ["AlertQuery", "AlertRead", "Batch", "Keys", "Snapshot", "TriageStore"]

DONE_TTL_S = 7 * 24 * 3600
RESOLVED_TTL_S = 7 * 24 * 3600


class Keys:
    PREFIX = "jarvis:triage:"
    VERSION = PREFIX + "version"
    OPEN = PREFIX + "open"
    LAST_SEEN = PREFIX + "last-seen"
    QUIET = PREFIX + "quiet"
    DRILLS = PREFIX + "drills"

    @staticmethod
    def incident(incident_id: str) -> str:
        return f"{Keys.PREFIX}incident:{incident_id}"

    @staticmethod
    def fingerprint(fingerprint: str) -> str:
        return f"{Keys.PREFIX}fp:{fingerprint}"

    @staticmethod
    def slots(incident_id: str) -> str:
        return f"{Keys.PREFIX}slots:{incident_id}"

    @staticmethod
    def service(service: str) -> str:
        return f"{Keys.PREFIX}svc:{service}"

    @staticmethod
    def run(incident_id: str) -> str:
        return f"{Keys.PREFIX}run:{incident_id}"

    @staticmethod
    def done(event_id: str) -> str:
        return f"{Keys.PREFIX}done:{event_id}"


# KEYS: version. ARGV: now (epoch s), number of alerts, then for each alert: event id,
# fingerprint, firing ("1"/"0"), how many related services follow, the related services.
# Returns {version, per alert {done} or {0, incident id, slot json, {candidate ids}},
# {id, incident json, last seen, run json, ...} for every incident named, {service, drill
# json, ...} of the drills waiting for their incident}. A firing alert
# of a mapped fingerprint refreshes its incident's last-seen time.
_READ_ALERTS = f"""
local version = redis.call('GET', KEYS[1]) or '0'
local now, count = ARGV[1], tonumber(ARGV[2])
local alerts, named, order = {{}}, {{}}, {{}}
local function name(id)
  if not named[id] then
    named[id] = true
    order[#order + 1] = id
  end
end
local i = 3
for a = 1, count do
  local event_id, fp, firing, nrel = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local first = i + 4
  i = first + nrel
  if redis.call('EXISTS', '{Keys.PREFIX}done:' .. event_id) == 1 then
    alerts[a] = {{1}}
  else
    local id = redis.call('GET', '{Keys.PREFIX}fp:' .. fp)
    if id then
      if firing == '1' then
        redis.call('HSET', '{Keys.LAST_SEEN}', id, now)
      end
      name(id)
      alerts[a] = {{0, id, redis.call('HGET', '{Keys.PREFIX}slots:' .. id, fp) or false, {{}}}}
    else
      local candidates = {{}}
      if firing == '1' then
        for r = first, first + nrel - 1 do
          for _, open_id in ipairs(redis.call('SMEMBERS', '{Keys.PREFIX}svc:' .. ARGV[r])) do
            candidates[#candidates + 1] = open_id
            name(open_id)
          end
        end
      end
      alerts[a] = {{0, false, false, candidates}}
    end
  end
end
local incidents = {{}}
for _, id in ipairs(order) do
  incidents[#incidents + 1] = id
  incidents[#incidents + 1] = redis.call('GET', '{Keys.PREFIX}incident:' .. id) or false
  incidents[#incidents + 1] = redis.call('HGET', '{Keys.LAST_SEEN}', id) or '0'
  incidents[#incidents + 1] = redis.call('GET', '{Keys.PREFIX}run:' .. id) or false
end
return {{version, alerts, incidents, redis.call('HGETALL', '{Keys.DRILLS}')}}
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


@dataclass(frozen=True)
class AlertQuery:
    """What a batch read needs to know of one alert."""

    event_id: str
    fingerprint: str
    firing: bool
    related: Sequence[str]  # services whose open incidents a new fingerprint may join


@dataclass(frozen=True)
class AlertRead:
    done: bool  # applied before: a redelivery
    incident_id: str | None = None  # the fingerprint's open incident
    slot: AlertSlot | None = None  # the fingerprint's slot there
    candidates: tuple[str, ...] = ()  # open incidents of related services (new fingerprint)


@dataclass
class Snapshot:
    """The state a batch of alerts was read at (one version), plus what the batch itself
    has decided so far: each alert is decided on the state its predecessors left, and the
    whole batch commits on the version read, or not at all."""

    version: str
    reads: list[AlertRead]
    incidents: dict[str, Incident]
    last_seen: dict[str, datetime]
    runs: dict[str, Run]
    drills: dict[str, str] = field(default_factory=dict)  # service → DrillStarted JSON
    fingerprints: dict[str, str] = field(default_factory=dict)  # mapped by this batch
    slots: dict[str, AlertSlot] = field(default_factory=dict)  # written by this batch
    joined: dict[str, set[str]] = field(default_factory=dict)  # service → incidents (batch)
    applied: set[str] = field(default_factory=set)  # event ids applied by this batch
    touched: dict[str, None] = field(default_factory=dict)  # incidents changed, in order

    def done(self, index: int, event_id: str) -> bool:
        return self.reads[index].done or event_id in self.applied

    def mapped(self, index: int, fingerprint: str) -> Mapped | None:
        read = self.reads[index]
        incident_id = self.fingerprints.get(fingerprint, read.incident_id)
        slot = self.slots.get(fingerprint, read.slot)
        incident = self.incidents.get(incident_id) if incident_id else None
        return (incident, slot) if incident is not None and slot is not None else None

    def candidates(self, index: int, related: Sequence[str]) -> list[tuple[Incident, datetime]]:
        ids = set(self.reads[index].candidates)
        for service in related:
            ids |= self.joined.get(service, set())
        return [(self.incidents[i], self.last_seen[i]) for i in ids if i in self.incidents]

    def changed(self) -> list[Incident]:
        """The incidents this batch changed, as they are now."""
        return [self.incidents[i] for i in self.touched]

    def apply(self, event_id: str, fingerprint: str, change: Change, now: datetime) -> None:
        inc = change.incident
        self.incidents[inc.id] = inc
        self.touched[inc.id] = None
        self.fingerprints[fingerprint] = inc.id
        self.slots[fingerprint] = change.slot
        self.joined.setdefault(change.slot.service, set()).add(inc.id)
        if change.slot.firing:
            self.last_seen[inc.id] = now
        self.applied.add(event_id)


@dataclass
class Batch:
    """The writes and events of one commit, in order."""

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
        self.commands.append(["XADD", stream_for(event).key, "*", DATA_FIELD, event.to_json()])


class TriageStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._read_alerts = redis.register_script(_READ_ALERTS)
        self._read = redis.register_script(_READ)
        self._commit = redis.register_script(_COMMIT)

    def batch(self) -> Batch:
        return Batch()

    async def read_alerts(self, queries: Sequence[AlertQuery], now: datetime) -> Snapshot:
        """Everything deciding `queries` needs, read at one version (one round trip)."""
        args: list[str] = [repr(now.timestamp()), str(len(queries))]
        for q in queries:
            args += [q.event_id, q.fingerprint, "1" if q.firing else "0", str(len(q.related))]
            args += q.related
        version, alerts, named, drills = await self._read_alerts(keys=[Keys.VERSION], args=args)
        reads = [
            AlertRead(True)
            if int(a[0])
            else AlertRead(
                False,
                as_text(a[1]) if a[1] else None,
                AlertSlot.from_json(a[2]) if a[2] else None,
                tuple(as_text(c) for c in a[3]),
            )
            for a in alerts
        ]
        snapshot = Snapshot(as_text(version), reads, {}, {}, {})
        for i in range(0, len(drills), 2):
            snapshot.drills[as_text(drills[i])] = as_text(drills[i + 1])
        for i in range(0, len(named), 4):
            incident_id = as_text(named[i])
            doc, seen, run = named[i + 1], named[i + 2], named[i + 3]
            if doc:
                snapshot.incidents[incident_id] = Incident.from_json(doc)
                snapshot.last_seen[incident_id] = datetime.fromtimestamp(float(as_text(seen)), UTC)
            if run:
                snapshot.runs[incident_id] = Run.from_json(run)
        return snapshot

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

    async def fingerprints(self, incident_id: str) -> list[str]:
        """The fingerprints that joined an incident. Read apart from a version: every change
        to them bumps the version that the caller's commit is conditional on."""
        return [as_text(fp) for fp in await self._redis.hkeys(Keys.slots(incident_id))]

    async def due_quiet(self, now: datetime, limit: int = 100) -> Sequence[str]:
        due = await self._redis.zrangebyscore(
            Keys.QUIET, "-inf", now.timestamp(), start=0, num=limit
        )
        return [as_text(d) for d in due]

    async def last_seen(self) -> dict[str, datetime]:
        """Every open incident with the time it last saw a firing alert."""
        seen = await self._redis.hgetall(Keys.LAST_SEEN)
        return {as_text(k): datetime.fromtimestamp(float(as_text(v)), UTC) for k, v in seen.items()}

    async def expect_drill(self, service: str, drill_json: str) -> None:
        """The next incident of `service` is this drill's (read with the next alerts)."""
        await self._redis.hset(Keys.DRILLS, service, drill_json)

    async def open_count(self) -> int:
        return int(await self._redis.scard(Keys.OPEN))
