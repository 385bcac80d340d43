"""Triage's state in Redis, read and written atomically (the port behind the decisions).

Every change is optimistic and serialisable, conditional only on what it read: a read
script returns the state together with the *versions* of what it read; the decision is
made in Python (pure); a commit script applies the writes *and appends the resulting
events to their streams* only if none of those versions changed, then stamps the versions
of what it wrote. So two replicas never both open an incident for one fingerprint or both
request one playbook step, and an event is published exactly when its state change is
stored (a transactional outbox: a crash between the two cannot happen). Replicas handling
unrelated fingerprints never conflict: nothing either reads is written by the other.

Versions (hash `versions`, a field per thing, the value a stamp from the `sequence`
counter, so a version that is forgotten and written again never repeats an old one):

* `f:<fingerprint>`: the fingerprint's mapping, its slot, and whether its alerts were
  applied; read by every alert of it, stamped by every alert of it that writes anything;
* `i:<incident>`: the incident's document, last-seen time, timers and playbook run; read by
  an alert mapped to it, by a new fingerprint for which it is a candidate, by the playbook
  and the resolution; stamped by every change to it;
* `s:<service>`: the open incidents the service is in (`svc:<service>`, the candidates of a
  new fingerprint of it or of a related service); read by a new fingerprint that looks up
  candidates, stamped when an incident opens with the service or the service joins one, and
  when the incident resolves. Two new fingerprints of related services therefore conflict
  (one of them must see the other's incident); unrelated ones do not.

A resolution forgets the incident's and its fingerprints' versions (they would otherwise
grow with every fingerprint ever seen); a commit also requires the `done:` marker of every
alert it applies to be absent, so an alert is applied once even across a forgotten version.

A repeat of an alert that is already firing changes nothing and costs its share of a read.

Alerts are read and committed a batch at a time: one read of everything the batch needs,
decisions made alert by alert on the state the previous ones left (`Snapshot`), one commit
conditional on the union of what the batch read. If another replica committed one of those
in between, the batch is split and retried (counted by `jarvis_triage_commit_conflicts_total`).

Keys (prefix `jarvis:triage:`): `versions`, `sequence` (above); `incident:<id>` (JSON,
without its alerts); `slots:<id>` (hash fingerprint → the fingerprint's latest word, JSON);
`fp:<fingerprint>` → the open incident; `svc:<service>` (set of the open incidents the
service is in); `open` (set of open incident ids); `last-seen` (hash id → epoch s of the
last firing alert); `quiet` (sorted set id → when its quiet period ends); `run:<id>` (the
playbook run, JSON); `done:<event_id>` (an alert already applied); `drills` (hash service →
the DrillStarted whose incident is still to open: the next incident of that service is the
drill's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic_core
from prometheus_client import Counter
from redis.asyncio import Redis

from services.triage.grouping import AlertSlot, Change, Incident, Mapped
from services.triage.playbooks import Run
from shared.bus import DATA_FIELD, as_text
from shared.events import Event, trusted_json
from shared.silence_store import VERSION_KEY as SILENCES_VERSION
from shared.streams import stream_for, stream_of

__all__ = [
    "CONFLICTS",
    "AlertQuery",
    "AlertRead",
    "Batch",
    "Keys",
    "Snapshot",
    "TriageStore",
    "Version",
    "Versions",
]

DONE_TTL_S = 7 * 24 * 3600
RESOLVED_TTL_S = 7 * 24 * 3600

CONFLICTS = Counter(
    "jarvis_triage_commit_conflicts_total",
    "Triage commits refused because something they read changed (another replica's commit); "
    "each is retried on a fresh read.",
)

Versions = dict[str, str]  # version field → the version read (see the module's docstring)


class Keys:
    PREFIX = "jarvis:triage:"
    VERSIONS = PREFIX + "versions"
    SEQUENCE = PREFIX + "sequence"
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


class Version:
    """The fields of the `versions` hash."""

    @staticmethod
    def fingerprint(fingerprint: str) -> str:
        return "f:" + fingerprint

    @staticmethod
    def incident(incident_id: str) -> str:
        return "i:" + incident_id

    @staticmethod
    def service(service: str) -> str:
        return "s:" + service


# KEYS: versions. ARGV: now (epoch s), number of alerts, then for each alert: event id,
# fingerprint, firing ("1"/"0"), how many related services follow, the related services.
# Returns {per alert {done} or {0, incident id, slot json, {candidate ids}, fingerprint's
# version}, {id, incident json, last seen, run json, version, ...} for every incident
# named, {service, drill json, ...} of the drills waiting for their incident, {service,
# version, ...} of the services whose candidates were read, the silences' version (no
# round trip of its own)}. A firing alert of a mapped fingerprint refreshes its incident's
# last-seen time.
_READ_ALERTS = f"""
local now, count = ARGV[1], tonumber(ARGV[2])
local alerts, named, order, services = {{}}, {{}}, {{}}, {{}}
local function version(field)
  return redis.call('HGET', KEYS[1], field) or '0'
end
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
    local fv = version('f:' .. fp)
    local id = redis.call('GET', '{Keys.PREFIX}fp:' .. fp)
    if id then
      if firing == '1' then
        redis.call('HSET', '{Keys.LAST_SEEN}', id, now)
      end
      name(id)
      alerts[a] = {{0, id, redis.call('HGET', '{Keys.PREFIX}slots:' .. id, fp) or false, {{}}, fv}}
    else
      local candidates = {{}}
      if firing == '1' then
        for r = first, first + nrel - 1 do
          if services[ARGV[r]] == nil then
            services[ARGV[r]] = version('s:' .. ARGV[r])
          end
          for _, open_id in ipairs(redis.call('SMEMBERS', '{Keys.PREFIX}svc:' .. ARGV[r])) do
            candidates[#candidates + 1] = open_id
            name(open_id)
          end
        end
      end
      alerts[a] = {{0, false, false, candidates, fv}}
    end
  end
end
local incidents = {{}}
for _, id in ipairs(order) do
  incidents[#incidents + 1] = id
  incidents[#incidents + 1] = redis.call('GET', '{Keys.PREFIX}incident:' .. id) or false
  incidents[#incidents + 1] = redis.call('HGET', '{Keys.LAST_SEEN}', id) or '0'
  incidents[#incidents + 1] = redis.call('GET', '{Keys.PREFIX}run:' .. id) or false
  incidents[#incidents + 1] = version('i:' .. id)
end
local read = {{}}
for service, v in pairs(services) do
  read[#read + 1] = service
  read[#read + 1] = v
end
return {{alerts, incidents, redis.call('HGETALL', '{Keys.DRILLS}'), read,
  redis.call('GET', '{SILENCES_VERSION}')}}
"""

# KEYS: versions, then keys to GET. ARGV: version fields. Returns {versions, values}.
_READ = """
local versions, values = {}, {}
for i = 1, #ARGV do
  versions[i] = redis.call('HGET', KEYS[1], ARGV[i]) or '0'
end
for i = 2, #KEYS do
  values[i - 1] = redis.call('GET', KEYS[i]) or false
end
return {versions, values}
"""

# KEYS: versions, sequence. ARGV: JSON [[field, version read]..., keys that must not exist,
# fields to stamp, fields to forget, commands]. All or nothing: applied only when every
# version read is unchanged and no key that must be absent exists; then the written
# fields get one new stamp from the sequence.
_COMMIT = """
local spec = cjson.decode(ARGV[1])
for _, read in ipairs(spec[1]) do
  if (redis.call('HGET', KEYS[1], read[1]) or '0') ~= read[2] then
    return 0
  end
end
for _, key in ipairs(spec[2]) do
  if redis.call('EXISTS', key) == 1 then
    return 0
  end
end
for _, command in ipairs(spec[5]) do
  redis.call(unpack(command))
end
if #spec[3] > 0 then
  local stamp = redis.call('INCR', KEYS[2])
  for _, written in ipairs(spec[3]) do
    redis.call('HSET', KEYS[1], written, stamp)
  end
end
for _, forgotten in ipairs(spec[4]) do
  redis.call('HDEL', KEYS[1], forgotten)
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
    """The state a batch of alerts was read at (with the versions of all it read), plus
    what the batch itself has decided so far: each alert is decided on the state its
    predecessors left, and the whole batch commits on the versions read, or not at all."""

    versions: Versions
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
    silences_version: bytes | None = None  # of the silences (shared.silence_store), read too

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
    """The writes and events of one commit, in order, with the versions they change."""

    commands: list[list[str]] = field(default_factory=list)
    stamped: dict[str, None] = field(default_factory=dict)  # version fields written
    forgotten: dict[str, None] = field(default_factory=dict)  # version fields removed
    absent: list[str] = field(default_factory=list)  # keys that must not exist yet

    def stamp(self, *fields: str) -> None:
        """These versions change with this commit (see the module's docstring)."""
        for f in fields:
            self.stamped[f] = None

    def forget(self, *fields: str) -> None:
        """Nothing is left that these versions describe: remove them."""
        for f in fields:
            self.stamped.pop(f, None)
            self.forgotten[f] = None

    def mark_done(self, event_id: str, value: str) -> None:
        """The alert is applied by this commit, which fails if it was already."""
        key = Keys.done(event_id)
        self.absent.append(key)
        self.set(key, value, DONE_TTL_S)

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

    def publish_trusted(self, cls: type[Event], **values: Any) -> None:
        """Publish `cls(**values)` made of triage's own, already validated values, without
        validating them again (`shared.events.trusted_json`: the same JSON)."""
        data = trusted_json(cls, **values)
        self.commands.append(["XADD", stream_of(cls).key, "*", DATA_FIELD, data])


class TriageStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._read_alerts = redis.register_script(_READ_ALERTS)
        self._read = redis.register_script(_READ)
        self._commit = redis.register_script(_COMMIT)

    def batch(self) -> Batch:
        return Batch()

    async def read_alerts(self, queries: Sequence[AlertQuery], now: datetime) -> Snapshot:
        """Everything deciding `queries` needs, with the versions of what was read (one
        round trip, one instant)."""
        args: list[str] = [repr(now.timestamp()), str(len(queries))]
        for q in queries:
            args += [q.event_id, q.fingerprint, "1" if q.firing else "0", str(len(q.related))]
            args += q.related
        reply = await self._read_alerts(keys=[Keys.VERSIONS], args=args)
        alerts, named, drills, services, silences = reply
        versions: Versions = {}
        reads: list[AlertRead] = []
        for q, a in zip(queries, alerts, strict=True):
            if int(a[0]):
                reads.append(AlertRead(True))
                continue
            versions[Version.fingerprint(q.fingerprint)] = as_text(a[4])
            reads.append(
                AlertRead(
                    False,
                    as_text(a[1]) if a[1] else None,
                    AlertSlot.from_json(a[2]) if a[2] else None,
                    tuple(as_text(c) for c in a[3]),
                )
            )
        snapshot = Snapshot(versions, reads, {}, {}, {}, silences_version=silences)
        for i in range(0, len(drills), 2):
            snapshot.drills[as_text(drills[i])] = as_text(drills[i + 1])
        for i in range(0, len(services), 2):
            versions[Version.service(as_text(services[i]))] = as_text(services[i + 1])
        for i in range(0, len(named), 5):
            incident_id = as_text(named[i])
            doc, seen, run = named[i + 1], named[i + 2], named[i + 3]
            versions[Version.incident(incident_id)] = as_text(named[i + 4])
            if doc:
                snapshot.incidents[incident_id] = Incident.from_json(doc)
                snapshot.last_seen[incident_id] = datetime.fromtimestamp(float(as_text(seen)), UTC)
            if run:
                snapshot.runs[incident_id] = Run.from_json(run)
        return snapshot

    async def read(self, fields: Sequence[str], *keys: str) -> tuple[Versions, list[bytes | None]]:
        """The versions `fields` and the values of `keys`, read at one instant."""
        versions, values = await self._read(keys=[Keys.VERSIONS, *keys], args=list(fields))
        return (
            {f: as_text(v) for f, v in zip(fields, versions, strict=True)},
            [v if v else None for v in values],
        )

    async def commit(self, versions: Versions, batch: Batch) -> bool:
        """Apply the batch if nothing it was decided on changed since `versions` were read."""
        if not batch.commands:
            return True
        spec = [
            [[f, v] for f, v in versions.items()],
            batch.absent,
            list(batch.stamped),
            list(batch.forgotten),
            batch.commands,
        ]
        # pydantic-core's encoder: the same compact JSON as json.dumps, several times faster
        # on the event JSON embedded in it (non-ASCII text as UTF-8 rather than \\u escapes).
        payload = pydantic_core.to_json(spec)
        keys = [Keys.VERSIONS, Keys.SEQUENCE]
        if int(await self._commit(keys=keys, args=[payload])):
            return True
        CONFLICTS.inc()
        return False

    async def fingerprints(self, incident_id: str) -> list[str]:
        """The fingerprints that joined an incident. Read apart from its version: every
        change to them stamps the incident's version, which the caller's commit reads."""
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
