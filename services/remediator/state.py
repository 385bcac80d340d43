"""The remediator's state in Redis, changed by atomic scripts so replicas agree.

Per action (`action_id`): a claim taken before anything runs (a redelivered request is
never executed twice), the stored completion (republished on redelivery), the request
while it waits for approval (`pending`, scored by its deadline) or runs (`inflight`,
scored by the time after which a crashed run is reported as interrupted).
Per target: attempt windows, the last fix, the alerts firing, and blocks.
Times are the runtime clock's epoch seconds, so tests can drive them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from redis.asyncio import Redis

from services.remediator.guardrails import FixRecord
from shared.bus import as_text
from shared.events import ActionCompleted, ActionRequested
from shared.settings.remediator import REQUEST_TTL_S
from shared.streams import ACTIONS_COMPLETED

__all__ = ["PREFIX", "RemediatorState"]

PREFIX = "jarvis:remediator"
PENDING = f"{PREFIX}:pending"
INFLIGHT = f"{PREFIX}:inflight"
_TTL_S = REQUEST_TTL_S  # approval_timeout_s is capped below it (shared/settings/remediator.py)

# KEYS: claim, inflight, request. ARGV: action id, deadline, request JSON, ttl.
_CLAIM = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[4]) then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  redis.call('SET', KEYS[3], ARGV[3], 'EX', ARGV[4])
  return 1
end
return 0
"""

# KEYS: done, inflight, pending, stream. ARGV: id, completion JSON, ttl.
# Stores and publishes the final answer exactly once (as EventBus does: JSON in __data__).
_FINISH = """
if redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[3]) then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('XADD', KEYS[4], '*', '__data__', ARGV[2])
  return 1
end
return 0
"""

# KEYS: inflight, pending, awaiting, stream. ARGV: id, approval deadline, JSON, ttl.
_PARK = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if redis.call('SET', KEYS[3], ARGV[3], 'NX', 'EX', ARGV[4]) then
  redis.call('XADD', KEYS[4], '*', '__data__', ARGV[3])
end
return 1
"""

# KEYS: pending, inflight, request. ARGV: id, run deadline. The request JSON, or nil when
# the action is not waiting (already approved, timed out, or unknown).
_TAKE_APPROVED = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
  return redis.call('GET', KEYS[3])
end
return false
"""

# KEYS: zset, done, stream, other zset. ARGV: id, now, completion JSON, ttl.
_EXPIRE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) <= tonumber(ARGV[2]) then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[4]) then
    redis.call('XADD', KEYS[3], '*', '__data__', ARGV[3])
    return 1
  end
end
return 0
"""

# KEYS: pending, done, stream, incident index. ARGV: id, completion JSON, ttl.
# Finishes an action that still waits for approval (its incident was resolved).
_WITHDRAW = """
redis.call('SREM', KEYS[4], ARGV[1])
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3]) then
    redis.call('XADD', KEYS[3], '*', '__data__', ARGV[2])
    return 1
  end
end
return 0
"""

# KEYS: attempts zset. ARGV: now, window, max, id, ttl. {1, count} when allowed (the run is
# recorded; the same id counts once), {0, count} when the limit is reached.
_ATTEMPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[2])))
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  return {1, redis.call('ZCARD', KEYS[1])}
end
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then
  return {0, n}
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, n + 1}
"""


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


class RemediatorState:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._claim = redis.register_script(_CLAIM)
        self._finish = redis.register_script(_FINISH)
        self._park = redis.register_script(_PARK)
        self._take = redis.register_script(_TAKE_APPROVED)
        self._expire = redis.register_script(_EXPIRE)
        self._attempt = redis.register_script(_ATTEMPT)
        self._withdraw = redis.register_script(_WITHDRAW)

    # -- one action ---------------------------------------------------------------
    async def done(self, action_id: str) -> ActionCompleted | None:
        raw = await self._redis.get(f"{PREFIX}:done:{action_id}")
        return ActionCompleted.model_validate_json(raw) if raw is not None else None

    async def awaiting(self, action_id: str) -> ActionCompleted | None:
        raw = await self._redis.get(f"{PREFIX}:awaiting:{action_id}")
        return ActionCompleted.model_validate_json(raw) if raw is not None else None

    async def is_pending(self, action_id: str) -> bool:
        return await self._redis.zscore(PENDING, action_id) is not None

    async def claim(self, request: ActionRequested, run_deadline: datetime) -> bool:
        """Take the action for this replica; False when someone already has."""
        aid = request.action_id
        taken = await self._claim(
            keys=[f"{PREFIX}:claim:{aid}", INFLIGHT, f"{PREFIX}:request:{aid}"],
            args=[aid, _epoch(run_deadline), request.to_json(), _TTL_S],
        )
        return bool(taken)

    async def finish(self, completion: ActionCompleted) -> bool:
        """Store and publish the final answer; False when one was already there."""
        aid = completion.action_id
        stored = await self._finish(
            keys=[f"{PREFIX}:done:{aid}", INFLIGHT, PENDING, ACTIONS_COMPLETED.key],
            args=[aid, completion.to_json(), _TTL_S],
        )
        return bool(stored)

    async def park(self, awaiting: ActionCompleted, approval_deadline: datetime) -> None:
        """The action waits for approval; publish `awaiting` (once)."""
        aid = awaiting.action_id
        await self._park(
            keys=[INFLIGHT, PENDING, f"{PREFIX}:awaiting:{aid}", ACTIONS_COMPLETED.key],
            args=[aid, _epoch(approval_deadline), awaiting.to_json(), _TTL_S],
        )

    async def take_approved(self, action_id: str, run_deadline: datetime) -> ActionRequested | None:
        raw = await self._take(
            keys=[PENDING, INFLIGHT, f"{PREFIX}:request:{action_id}"],
            args=[action_id, _epoch(run_deadline)],
        )
        return ActionRequested.model_validate_json(raw) if raw else None

    async def request(self, action_id: str) -> ActionRequested | None:
        raw = await self._redis.get(f"{PREFIX}:request:{action_id}")
        return ActionRequested.model_validate_json(raw) if raw else None

    async def overdue(self, which: str, now: datetime, limit: int = 100) -> list[str]:
        """Ids in `pending` or `inflight` whose deadline has passed."""
        key = PENDING if which == "pending" else INFLIGHT
        ids = await self._redis.zrangebyscore(key, "-inf", _epoch(now), start=0, num=limit)
        return [as_text(i) for i in ids]

    async def forget(self, which: str, action_id: str) -> None:
        """Drop an id whose request is gone (expired or deleted): nothing can answer it."""
        await self._redis.zrem(PENDING if which == "pending" else INFLIGHT, action_id)

    async def expire(self, which: str, completion: ActionCompleted, now: datetime) -> bool:
        """Finish an overdue action with `completion`, if it is still overdue."""
        key, other = (PENDING, INFLIGHT) if which == "pending" else (INFLIGHT, PENDING)
        aid = completion.action_id
        done = await self._expire(
            keys=[key, f"{PREFIX}:done:{aid}", ACTIONS_COMPLETED.key, other],
            args=[aid, _epoch(now), completion.to_json(), _TTL_S],
        )
        return bool(done)

    async def index_pending(self, incident_id: str, action_id: str) -> None:
        """Remember that `action_id` waits for approval on behalf of `incident_id`."""
        key = f"{PREFIX}:pending-of:{incident_id}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.sadd(key, action_id)
        pipe.expire(key, _TTL_S)
        await pipe.execute()

    async def pending_of(self, incident_id: str) -> list[str]:
        ids = await self._redis.smembers(f"{PREFIX}:pending-of:{incident_id}")
        return sorted(as_text(i) for i in ids)

    async def withdraw(self, completion: ActionCompleted) -> bool:
        """Answer an action that waits for approval with `completion`, if it still waits."""
        aid = completion.action_id
        incident = f"{PREFIX}:pending-of:{completion.incident_id}"
        done = await self._withdraw(
            keys=[PENDING, f"{PREFIX}:done:{aid}", ACTIONS_COMPLETED.key, incident],
            args=[aid, completion.to_json(), _TTL_S],
        )
        return bool(done)

    async def pending_count(self) -> int:
        return int(await self._redis.zcard(PENDING))

    # -- per target -----------------------------------------------------------------
    async def attempt(
        self,
        action: str,
        target: str,
        action_id: str,
        now: datetime,
        max_attempts: int,
        window_s: float,
    ) -> tuple[bool, int]:
        allowed, count = await self._attempt(
            keys=[f"{PREFIX}:attempts:{action}:{target}"],
            args=[_epoch(now), window_s, max_attempts, action_id, int(window_s) + 60],
        )
        return bool(allowed), int(count)

    async def note_alert(
        self, target: str, fingerprint: str, firing: bool, now: datetime, ttl_s: float
    ) -> None:
        key = f"{PREFIX}:firing:{target}"
        if firing:
            pipe = self._redis.pipeline(transaction=True)
            pipe.hset(key, fingerprint, _epoch(now))
            pipe.expire(key, int(ttl_s) + 60)
            await pipe.execute()
        else:
            await self._redis.hdel(key, fingerprint)

    async def firing(self, target: str) -> set[str]:
        return {as_text(f) for f in await self._redis.hkeys(f"{PREFIX}:firing:{target}")}

    async def record_fix(self, fix: FixRecord, ttl_s: float) -> None:
        body = {
            "action_id": fix.action_id,
            "action": fix.action,
            "target": fix.target,
            "at": fix.at.isoformat(),
            "fingerprints": sorted(fix.fingerprints),
            "incident_id": fix.incident_id,
            "correlation_id": fix.correlation_id,
        }
        await self._redis.set(f"{PREFIX}:fix:{fix.target}", json.dumps(body), ex=int(ttl_s) + 60)

    async def fix(self, target: str) -> FixRecord | None:
        raw = await self._redis.get(f"{PREFIX}:fix:{target}")
        if raw is None:
            return None
        body = json.loads(raw)
        return FixRecord(
            action_id=body["action_id"],
            action=body["action"],
            target=body["target"],
            at=datetime.fromisoformat(body["at"]).astimezone(UTC),
            fingerprints=frozenset(body["fingerprints"]),
            incident_id=body.get("incident_id"),
            correlation_id=body.get("correlation_id"),
        )

    async def clear_fix(self, target: str, action_id: str) -> None:
        fix = await self.fix(target)
        if fix is not None and fix.action_id == action_id:
            await self._redis.delete(f"{PREFIX}:fix:{target}")

    async def forget_fixes(self, targets: tuple[str, ...]) -> None:
        if targets:
            await self._redis.delete(*(f"{PREFIX}:fix:{t}" for t in targets))

    async def block(self, target: str, reason: str, until: datetime, ttl_s: float) -> None:
        body = json.dumps({"reason": reason, "until": _epoch(until)})
        await self._redis.set(f"{PREFIX}:block:{target}", body, ex=int(ttl_s) + 60)

    async def blocks(self, targets: tuple[str, ...], now: datetime) -> dict[str, str]:
        """The targets among `targets` on which automatic action is stopped, with why."""
        if not targets:
            return {}
        raws = await self._redis.mget([f"{PREFIX}:block:{t}" for t in targets])
        found = {}
        for target, raw in zip(targets, raws, strict=True):
            if raw is None:
                continue
            body = json.loads(raw)
            if body["until"] > _epoch(now):
                found[target] = str(body["reason"])
        return found
