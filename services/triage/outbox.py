"""Turning triage's decisions into the writes and events of one atomic commit.

Every event id is derived (uuid5) from what caused it, so a retried decision produces the
very same events, and the recorder stores each once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from services.triage.grouping import Change, Incident
from services.triage.playbooks import Run, RunStatus, StepRequest
from services.triage.rules import response_due
from services.triage.store import RESOLVED_TTL_S, Batch, Keys, Version
from shared.events import (
    ActionRequested,
    AlertCorrelated,
    AlertRaised,
    AlertStatus,
    IncidentResolved,
    NoteAdded,
    SeverityAssigned,
)
from shared.ids import uuid5_text

__all__ = [
    "GROUP",
    "automatic_resolution",
    "derived_id",
    "write_alert_change",
    "write_incidents",
    "write_note",
    "write_resolution",
    "write_step",
]

GROUP = "triage"
_NS = uuid.UUID("0b6f3d64-3b8e-4f5e-9a3c-1f6f0e1c2a77")


def derived_id(*parts: str) -> str:
    return uuid5_text(_NS, ":".join(parts))


def write_alert_change(
    batch: Batch, alert: AlertRaised, change: Change, quiet_period: timedelta, now: datetime
) -> None:
    """State, timers and events of an alert that changed an incident. The incident itself
    is written once per batch by `write_incidents`, whatever number of alerts changed it."""
    inc = change.incident
    batch.stamp(Version.fingerprint(alert.fingerprint), Version.incident(inc.id))
    if change.new_service:  # the service's set of open incidents gains this one
        batch.stamp(Version.service(change.slot.service))
    batch.hset(Keys.slots(inc.id), alert.fingerprint, change.slot.to_json())
    batch.set(Keys.fingerprint(alert.fingerprint), inc.id)
    batch.sadd(Keys.service(change.slot.service), inc.id)
    batch.sadd(Keys.OPEN, inc.id)
    if change.quiet and inc.quiet_since is not None:
        batch.zadd(Keys.QUIET, inc.id, (inc.quiet_since + quiet_period).timestamp())
    else:
        batch.zrem(Keys.QUIET, inc.id)
    if alert.status is AlertStatus.FIRING:
        batch.hset(Keys.LAST_SEEN, inc.id, repr(now.timestamp()))
    batch.mark_done(alert.event_id, inc.id)
    # One or two events per alert: made of values validated already (the alert's, the
    # incident's, ids derived here), published without validating them again.
    if change.assigned is not None:
        _assigned(batch, alert, change)
    if change.joined is not None:
        batch.publish_trusted(
            AlertCorrelated,
            event_id=derived_id(alert.event_id, "correlated"),
            producer=GROUP,
            incident_id=inc.id,
            correlation_id=inc.id,
            causation_id=alert.event_id,
            fingerprint=alert.fingerprint,
            service=alert.service,
            status=alert.status,
            reason=change.joined
            + (" (reopened within the quiet period)" if change.reopened else "")
            + (f"; probable root cause: {inc.root_cause}" if change.root_cause_changed else ""),
        )


def write_incidents(batch: Batch, incidents: Iterable[Incident]) -> None:
    for inc in incidents:
        batch.set(Keys.incident(inc.id), inc.to_json())


def _assigned(batch: Batch, alert: AlertRaised, change: Change) -> None:
    inc = change.incident
    batch.publish_trusted(
        SeverityAssigned,
        event_id=derived_id(alert.event_id, "severity"),
        producer=GROUP,
        incident_id=inc.id,
        correlation_id=inc.id,
        causation_id=alert.event_id,
        severity=inc.severity,
        previous_severity=change.previous_severity,
        impact=inc.impact,
        urgency=inc.urgency,
        response_due_at=response_due(inc.severity, inc.opened_at),
        opened_at=inc.opened_at,
        reason=change.assigned or inc.reason,
        fingerprint=alert.fingerprint,
        service=inc.root_cause,
        title=inc.title,
        services=list(inc.services),
        playbook=inc.playbook,
        data_loss=inc.data_loss,
        security=inc.security,
        root_cause=inc.root_cause,
        drill_id=inc.drill_id,
    )


def write_step(batch: Batch, run: Run, request: StepRequest, causation_id: str) -> None:
    """Store the run and request its current step."""
    batch.stamp(Version.incident(run.incident_id))
    batch.set(Keys.run(run.incident_id), run.to_json())
    batch.publish(
        ActionRequested(
            event_id=derived_id(request.action_id, "requested"),
            producer=GROUP,
            incident_id=run.incident_id,
            correlation_id=run.incident_id,
            causation_id=causation_id,
            action_id=request.action_id,
            action=request.action,
            target=request.target,
            params=request.params,
            requested_by=f"playbook:{run.playbook}",
            playbook=run.playbook,
            step=request.step,
            dangerous=request.dangerous,
            phase=request.phase.value,
            when=request.when,
            on_failure=request.on_failure,
        )
    )


def write_note(batch: Batch, incident_id: str, text: str, *key: str) -> None:
    batch.publish(
        NoteAdded(
            event_id=derived_id(incident_id, "note", *key),
            producer=GROUP,
            incident_id=incident_id,
            correlation_id=incident_id,
            author=GROUP,
            text=text,
        )
    )


def automatic_resolution(inc: Incident, why: str, note: str) -> IncidentResolved:
    """The IncidentResolved triage publishes when it closes an incident by itself."""
    return IncidentResolved(
        event_id=derived_id(inc.id, why),
        producer=GROUP,
        incident_id=inc.id,
        correlation_id=inc.id,
        by=GROUP,
        automatic=True,
        note=note,
    )


def write_resolution(
    batch: Batch,
    resolved: Incident,
    fingerprints: list[str],
    run: Run | None,
    event: IncidentResolved | None,
) -> None:
    """Close an incident: fingerprints free for new incidents, timers and playbook stopped.
    The versions of the incident and its fingerprints are forgotten with them; the services'
    sets of open incidents lose it."""
    batch.forget(Version.incident(resolved.id), *(Version.fingerprint(fp) for fp in fingerprints))
    batch.stamp(*(Version.service(service) for service in resolved.services))
    batch.set(Keys.incident(resolved.id), resolved.to_json(), RESOLVED_TTL_S)
    batch.delete(Keys.slots(resolved.id), *(Keys.fingerprint(fp) for fp in fingerprints))
    for service in resolved.services:
        batch.srem(Keys.service(service), resolved.id)
    batch.srem(Keys.OPEN, resolved.id)
    batch.hdel(Keys.LAST_SEEN, resolved.id)
    batch.zrem(Keys.QUIET, resolved.id)
    if run is not None and run.status in (RunStatus.RUNNING, RunStatus.PAUSED):
        stopped = Run(
            run.incident_id,
            run.playbook,
            run.service,
            run.step,
            RunStatus.STOPPED,
            f"incident resolved by {resolved.resolved_by}",
        )
        batch.set(Keys.run(run.incident_id), stopped.to_json(), RESOLVED_TTL_S)
    if event is not None:
        batch.publish(event)
