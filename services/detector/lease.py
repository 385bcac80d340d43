"""Detector HA: of N detector replicas, the one holding a Redis lease runs the probes.

Ingest (webhooks, `POST /api/v1/alerts`) is active-active: every replica accepts alerts.
Probes are not: N replicas probing would page N times. So the replicas elect one prober:

* the lease is `jarvis:detector:prober`, set with NX and a TTL (`detector.prober_lease_ttl_s`,
  by default one probe interval), its value `<epoch>:<replica token>`. Every replica tries
  to take or renew it every third of the TTL; the holder renews it well inside its TTL.
  The epoch comes from `jarvis:detector:prober:epoch` (INCR at each acquisition): a fencing
  token, different for every term, even for one replica that loses and retakes the lease;
* the prober publishes its alerts through a script that checks, atomically with the XADD,
  that the lease still holds the value of its term: a prober that was paused, cut off or
  lost the lease cannot publish (its alerts are dropped; the new prober probes anew).
  The alerts stay sealed (shared/envelope.py) as the detector's other alerts;
* what a new prober needs to avoid duplicate alerts is stored by that same script, in
  `jarvis:detector:probe-state` (hash): which conditions fire (with when they were last
  notified and since when they fail) and which polled alerts of other systems are active.
  A new prober loads it when its term starts, so a condition that fired under the old
  prober does not fire again, and resolves once when it recovers. Counts of failures or
  successes not yet confirmed (damping) are not stored: they restart from zero.

A killed prober's lease expires within the TTL; another replica takes it within a third
of the TTL more and starts probing at once: failover within 4/3 of the TTL (≤ 2 probe
intervals by default). A replica that stops gracefully releases the lease at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.bus import DATA_FIELD, SEAL_FIELD, as_text
from shared.events import AlertRaised
from shared.streams import ALERTS

__all__ = ["EPOCH", "LEASE", "PROBER", "STATE", "NotProber", "ProberLease"]

log = logging.getLogger(__name__)

LEASE = "jarvis:detector:prober"
EPOCH = "jarvis:detector:prober:epoch"
STATE = "jarvis:detector:probe-state"

PROBER = Gauge(
    "jarvis_detector_prober",
    "1 while this detector replica holds the prober lease and runs the probes, else 0.",
)

# KEYS: lease, epoch. ARGV: token, TTL ms, the lease value this replica holds ("" none).
# Returns the lease value when this replica holds it (renewed or taken), else nil.
_HOLD = """
local value = redis.call('GET', KEYS[1])
if value then
  if value == ARGV[3] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return value
  end
  return false
end
value = redis.call('INCR', KEYS[2]) .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""

# KEYS: lease, alerts stream, probe state. ARGV: the lease value of the publisher's term,
# how many alerts, per alert its data and seal, then pairs of state field and value ("":
# remove the field). Returns how many alerts were published, or -1 when the lease is not
# (or no longer) that term's: then nothing is written.
_PUBLISH = f"""
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local n = tonumber(ARGV[2])
for i = 3, 2 + 2 * n, 2 do
  redis.call('XADD', KEYS[2], '*', '{DATA_FIELD}', ARGV[i], '{SEAL_FIELD}', ARGV[i + 1])
end
for i = 3 + 2 * n, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[3], ARGV[i])
  else
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
  end
end
return n
"""

# KEYS: lease. ARGV: the value held. Deletes the lease only if it is still that value.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class NotProber(Exception):
    """The lease is not (or no longer) this replica's: its alerts were not published."""


class ProberLease:
    def __init__(
        self,
        redis: Redis,
        token: str,
        ttl_s: float,
        seal: Callable[[str], str],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self.token = token
        self.ttl_s = ttl_s
        self._seal = seal
        self._monotonic = monotonic
        self._held: str | None = None  # the lease value of this replica's current term
        self._valid_until = 0.0
        self.acquired = asyncio.Event()  # set while this replica is the prober
        self._hold = redis.register_script(_HOLD)
        self._publish = redis.register_script(_PUBLISH)
        self._release = redis.register_script(_RELEASE)

    @property
    def renew_s(self) -> float:
        return self.ttl_s / 3

    @property
    def term(self) -> str | None:
        """The lease value of this replica's term while it is the prober."""
        if self._held is not None and self._monotonic() < self._valid_until:
            return self._held
        return None

    @property
    def is_prober(self) -> bool:
        return self.term is not None

    @property
    def epoch(self) -> int | None:
        term = self.term
        return int(term.split(":", 1)[0]) if term else None

    async def tick(self) -> bool:
        """Take or renew the lease; whether this replica is the prober now."""
        started = self._monotonic()
        try:
            value = await self._hold(
                keys=[LEASE, EPOCH], args=[self.token, int(self.ttl_s * 1000), self._held or ""]
            )
        except RedisError as exc:  # keeps what it had until its TTL runs out, not longer
            log.warning("prober lease: Redis unreachable: %s", exc)
        else:
            held = as_text(value) if value else None
            if held != self._held:
                log.warning(
                    "prober lease: %s", f"this replica probes (term {held})" if held else "lost"
                )
            self._held = held
            # Counted from before the call: the lease was set no earlier than that.
            self._valid_until = started + self.ttl_s if held else 0.0
        self._signal()
        return self.is_prober

    def _signal(self) -> None:
        prober = self.is_prober
        PROBER.set(1 if prober else 0)
        if prober:
            self.acquired.set()
        else:
            self.acquired.clear()

    async def run_forever(self) -> None:
        while True:
            await self.tick()
            # Wake up before the term runs out even when a renewal was slow.
            await asyncio.sleep(self.renew_s)

    async def wait(self) -> str:
        """Until this replica is the prober; the term."""
        while True:
            term = self.term
            if term is not None:
                return term
            self._signal()
            await self.acquired.wait()
            if self.term is None:  # set by a tick whose term has run out since
                await asyncio.sleep(self.renew_s)

    async def publish(
        self, term: str, alerts: Sequence[AlertRaised], changes: Mapping[str, str]
    ) -> None:
        """XADD `alerts` (sealed) and store the probe state `changes` (field → value, ""
        removes it), only if the lease still holds `term`; `NotProber` otherwise."""
        args: list[str] = [term, str(len(alerts))]
        for alert in alerts:
            data = alert.to_json()
            args += [data, self._seal(data)]
        for state_field, state_value in changes.items():
            args += [state_field, state_value]
        published = int(await self._publish(keys=[LEASE, ALERTS.key, STATE], args=args))
        if published < 0:
            if self._held == term:
                self._held = None
                self._signal()
            raise NotProber(f"the prober lease is no longer term {term}")

    async def state(self) -> dict[str, str]:
        """The probe state the previous probers stored."""
        raw = await self._redis.hgetall(STATE)
        return {as_text(k): as_text(v) for k, v in raw.items()}

    async def release(self) -> None:
        """Give the lease up at once (a graceful stop), if this replica holds it."""
        held, self._held = self._held, None
        self._signal()
        if held:
            try:
                await self._release(keys=[LEASE], args=[held])
            except RedisError as exc:
                log.warning("prober lease: could not release it: %s", exc)
