"""How many services the stack does not know may be named by alerts from outside.

Each service an alert names gets an incident of its own, and triage keeps an open incident
until its alerts recover. A sender (or a mislabelled rule) naming a new service with every
alert would open incidents without end, so the detector accepts at most
`detector.max_unknown_services` distinct unknown services per window and answers 429 for
alerts naming more. Known are the stack's services (triage's containers, dependencies and
aliases, the detector's own probes) and `detector.known_services`. The window is kept in
Redis, shared by detector replicas, and checked and updated in one script.

A replica remembers the services it had admitted for a short while (a tenth of the window,
at most a minute) and does not ask Redis again for them: a sender naming the same few
services request after request costs no round trip, and their last-seen time in Redis is
at most that old, far inside the window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from redis.asyncio import Redis

from shared.bus import as_text
from shared.settings import Settings
from shared.silences import canonical_service

__all__ = ["ServiceBudget", "known_services"]

_KEY = "jarvis:detector:unknown-services"
_REFRESH_S = 60.0  # at most; a tenth of the window when that is shorter
_REMEMBERED = 10_000  # services remembered at most (forgotten all at once beyond)

# KEYS: the sorted set (service → last seen). ARGV: now, window, limit, services...
# Returns the services that did not fit (nothing is recorded then), or an empty list.
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (tonumber(ARGV[1]) - tonumber(ARGV[2])))
local new = {}
for i = 4, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    new[#new + 1] = ARGV[i]
  end
end
if #new > 0 and redis.call('ZCARD', KEYS[1]) + #new > tonumber(ARGV[3]) then
  return new
end
for i = 4, #ARGV do
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
return {}
"""


def known_services(settings: Settings) -> frozenset[str]:
    """The canonical names of every service the configuration knows."""
    t, d = settings.triage, settings.detector
    aliases = {k.lower(): v.lower() for k, v in t.service_aliases.items()}
    names: set[str] = {"detector", "alertmanager", "grafana", "pagerduty", "prometheus", "http"}
    names.update(t.containers, t.containers.values(), t.dependencies, aliases, aliases.values())
    for deps in t.dependencies.values():
        names.update(deps)
    names.update(c.service or c.name for c in d.docker.containers)
    names.update(h.service or h.name for h in d.heartbeats)
    names.update(target.service for target in d.http_targets)
    names.update(d.known_services)
    return frozenset(canonical_service(n, aliases) for n in names)


class ServiceBudget:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._aliases = {k.lower(): v.lower() for k, v in settings.triage.service_aliases.items()}
        self._known = known_services(settings)
        self._limit = settings.detector.max_unknown_services
        self._window_s = settings.detector.unknown_services_window_s
        self._admit = redis.register_script(_ADMIT)
        self._refresh_s = min(_REFRESH_S, self._window_s / 10)
        self._admitted: dict[str, float] = {}  # service → when Redis last admitted it

    async def over(self, services: Iterable[str], now: datetime) -> list[str]:
        """The unknown services among `services` that exceed the budget (all of the batch
        is then refused and nothing is counted); empty when the alerts may go on."""
        unknown = sorted({canonical_service(s, self._aliases) for s in services} - self._known)
        at = now.timestamp()
        unknown = [s for s in unknown if at - self._admitted.get(s, -1e18) >= self._refresh_s]
        if not unknown:
            return []
        refused = await self._admit(
            keys=[_KEY], args=[repr(at), repr(self._window_s), self._limit, *unknown]
        )
        if refused:
            return [as_text(name) for name in refused]
        if len(self._admitted) + len(unknown) > _REMEMBERED:
            self._admitted.clear()
        self._admitted.update(dict.fromkeys(unknown, at))
        return []

    def message(self, refused: list[str]) -> str:
        hours = self._window_s / 3600
        return (
            f"service: {', '.join(repr(s) for s in refused[:5])} would exceed "
            f"detector.max_unknown_services ({self._limit} services the stack does not know "
            f"within {hours:g} h); add them to detector.known_services if they are real"
        )
