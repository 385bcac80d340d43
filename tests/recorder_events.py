"""Event builders for the recorder's tests: an alert, triage's reactions, operator acts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import (
    AlertCorrelated,
    AlertRaised,
    AlertStatus,
    IncidentAcknowledged,
    IncidentResolved,
    Level,
    Severity,
    SeverityAssigned,
)

T0 = datetime(2025, 8, 8, 14, 23, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def new_id() -> str:
    return str(uuid.uuid4())


def alert(
    service: str = "backend",
    *,
    fingerprint: str | None = None,
    status: str = "firing",
    minute: float = 0,
    **extra: Any,
) -> AlertRaised:
    return AlertRaised(
        service=service,
        check="health",
        fingerprint=fingerprint or f"fp-{service}-{uuid.uuid4().hex[:8]}",
        status=AlertStatus(status),
        summary=f"{service} health check failing",
        source="probe",
        producer="detector",
        occurred_at=at(minute),
        **extra,
    )


def assigned(
    cause: AlertRaised,
    incident_id: str,
    severity: str = "P1",
    *,
    previous: str | None = None,
    minute: float = 0.5,
    **extra: Any,
) -> SeverityAssigned:
    return SeverityAssigned(
        producer="triage",
        incident_id=incident_id,
        correlation_id=incident_id,
        causation_id=cause.event_id,
        severity=Severity(severity),
        previous_severity=Severity(previous) if previous else None,
        impact=Level.HIGH,
        urgency=Level.LOW,
        response_due_at=T0 + timedelta(hours=1),
        opened_at=T0,
        reason="rule: backend down",
        fingerprint=cause.fingerprint,
        service=cause.service,
        title=f"{cause.service} unresponsive",
        services=[cause.service],
        occurred_at=at(minute),
        **extra,
    )


def correlated(cause: AlertRaised, incident_id: str, *, minute: float = 1) -> AlertCorrelated:
    return AlertCorrelated(
        producer="triage",
        incident_id=incident_id,
        correlation_id=incident_id,
        causation_id=cause.event_id,
        fingerprint=cause.fingerprint,
        service=cause.service,
        status=cause.status,
        reason="same fingerprint",
        occurred_at=at(minute),
    )


def acked(incident_id: str, *, minute: float = 5, by: str = "alice") -> IncidentAcknowledged:
    return IncidentAcknowledged(incident_id=incident_id, by=by, occurred_at=at(minute))


def resolved(incident_id: str, *, minute: float = 60, note: str = "restarted") -> IncidentResolved:
    return IncidentResolved(incident_id=incident_id, by="alice", note=note, occurred_at=at(minute))
