"""Triage's composition root and its thin handler.

State lives in Redis and changes through atomic scripts, so several replicas in one
consumer group never open two incidents for one fingerprint.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from redis.asyncio import Redis

from services.triage.classify import Classification, classify
from services.triage.rules import response_due
from shared.bus import as_text
from shared.events import (
    AlertCorrelated,
    AlertRaised,
    AlertStatus,
    Event,
    Level,
    Severity,
    SeverityAssigned,
)
from shared.runtime import Runtime, Service
from shared.streams import ALERTS

__all__ = ["GROUP", "IncidentIndex", "build"]

GROUP = "triage"
_NS = uuid.UUID("0b6f3d64-3b8e-4f5e-9a3c-1f6f0e1c2a77")

# KEYS[1] fingerprint key; ARGV: new incident id, severity, opened_at, service, cause event id.
_OPEN_OR_JOIN = """
local existing = redis.call('GET', KEYS[1])
if existing then
  local h = redis.call('HMGET', 'jarvis:triage:incident:' .. existing,
    'severity', 'opened_at', 'cause')
  return {existing, 0, h[1], h[2], h[3]}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', 'jarvis:triage:incident:' .. ARGV[1],
  'severity', ARGV[2], 'opened_at', ARGV[3], 'service', ARGV[4], 'cause', ARGV[5],
  'fingerprint', KEYS[1])
return {ARGV[1], 1, ARGV[2], ARGV[3], ARGV[5]}
"""

# KEYS[1] incident hash; ARGV[1] new severity. Raises only; returns the previous severity
# when it changed, else false.
_RAISE = """
local current = redis.call('HGET', KEYS[1], 'severity')
if current and ARGV[1] < current then
  redis.call('HSET', KEYS[1], 'severity', ARGV[1])
  return current
end
return false
"""


def _derived_id(*parts: str) -> str:
    """A deterministic id, so a redelivered alert republishes the very same events."""
    return str(uuid.uuid5(_NS, ":".join(parts)))


class IncidentIndex:
    """Open incidents by fingerprint, in Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._open_or_join = redis.register_script(_OPEN_OR_JOIN)
        self._raise = redis.register_script(_RAISE)

    async def open_or_join(
        self, alert: AlertRaised, severity: Severity, now: datetime
    ) -> tuple[str, bool, Severity, datetime, str]:
        """(incident id, opened now?, stored severity, opened_at, causing alert id)."""
        new_id = _derived_id(alert.event_id, "incident")
        res = await self._open_or_join(
            keys=[f"jarvis:triage:fp:{alert.fingerprint}"],
            args=[new_id, severity.value, now.isoformat(), alert.service, alert.event_id],
        )
        incident_id, opened, sev, opened_at, cause = (as_text(v) for v in res)
        return (
            str(incident_id),
            bool(int(opened)),
            Severity(sev),
            datetime.fromisoformat(str(opened_at)),
            str(cause),
        )

    async def raise_severity(self, incident_id: str, severity: Severity) -> Severity | None:
        previous = await self._raise(
            keys=[f"jarvis:triage:incident:{incident_id}"], args=[severity.value]
        )
        if not previous:
            return None
        return Severity(as_text(previous))


def build(runtime: Runtime) -> Service:
    settings = runtime.settings.triage
    bus = runtime.bus(GROUP)
    index = IncidentIndex(runtime.redis)
    default_impact = Level(settings.default_impact)
    default_urgency = Level(settings.default_urgency)

    async def on_alert(event: Event) -> None:
        assert isinstance(event, AlertRaised)
        alert = event
        verdict = classify(alert, default_impact, default_urgency)
        if alert.status is AlertStatus.RESOLVED:
            # A recovery joins the open incident, never opens one.
            incident_id = await runtime.redis.get(f"jarvis:triage:fp:{alert.fingerprint}")
            if incident_id:
                await bus.publish(_correlated(alert, as_text(incident_id), "recovery"))
            return
        now = runtime.clock.now()
        incident_id, opened, stored, opened_at, cause = await index.open_or_join(
            alert, verdict.severity, now
        )
        if opened or cause == alert.event_id:
            # New incident (or this very alert opened it and is redelivered).
            await bus.publish(
                _assigned(alert, incident_id, stored, None, opened_at, verdict.reason, verdict)
            )
            return
        previous = await index.raise_severity(incident_id, verdict.severity)
        if previous is not None:
            await bus.publish(
                _assigned(
                    alert,
                    incident_id,
                    verdict.severity,
                    previous,
                    opened_at,
                    f"raised: {verdict.reason}",
                    verdict,
                )
            )
        else:
            await bus.publish(_correlated(alert, incident_id, "same fingerprint"))

    return Service(name=GROUP, consumers=[runtime.consume(ALERTS, GROUP, on_alert)])


def _assigned(
    alert: AlertRaised,
    incident_id: str,
    severity: Severity,
    previous: Severity | None,
    opened_at: datetime,
    reason: str,
    verdict: Classification,
) -> SeverityAssigned:
    return SeverityAssigned(
        event_id=_derived_id(alert.event_id, "severity"),
        producer=GROUP,
        incident_id=incident_id,
        correlation_id=incident_id,
        causation_id=alert.event_id,
        severity=severity,
        previous_severity=previous,
        impact=verdict.impact,
        urgency=verdict.urgency,
        response_due_at=response_due(severity, opened_at),
        opened_at=opened_at,
        reason=reason,
        fingerprint=alert.fingerprint,
        service=alert.service,
        title=alert.summary or f"{alert.service}: {alert.check}",
        services=[alert.service],
        data_loss=alert.data_loss,
        security=alert.security,
    )


def _correlated(alert: AlertRaised, incident_id: str, reason: str) -> AlertCorrelated:
    return AlertCorrelated(
        event_id=_derived_id(alert.event_id, "correlated"),
        producer=GROUP,
        incident_id=incident_id,
        correlation_id=incident_id,
        causation_id=alert.event_id,
        fingerprint=alert.fingerprint,
        service=alert.service,
        status=alert.status,
        reason=reason,
    )
