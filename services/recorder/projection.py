"""How an event changes an incident: the pure decisions of the incident projection.

Status moves open → acknowledged → mitigated → resolved (runbook phases: response,
containment/recovery, closure). An alert of the incident recovering marks it mitigated;
the alert firing again takes it back. Severity only ever rises. The response deadline is
the earliest triage gave (the response time of the highest severity), the escalation level
the highest reached. Events may arrive in any order (they come from different streams),
so every rule tolerates a late arrival.
"""

from __future__ import annotations

from datetime import datetime

from services.recorder.db import as_utc
from services.recorder.models import ROLES, IncidentRow
from shared.events import (
    AlertCorrelated,
    AlertStatus,
    EscalationDue,
    Event,
    IncidentAcknowledged,
    IncidentResolved,
    RoleAssigned,
    Severity,
    SeverityAssigned,
)

__all__ = ["STATUSES", "apply", "open_incident", "root_cause_of"]

STATUSES = ("open", "acknowledged", "mitigated", "resolved")


def root_cause_of(event: SeverityAssigned) -> str | None:
    """Triage may name a root cause (an optional field); absent or blank means unknown."""
    value = getattr(event, "root_cause", None)
    if value is None:
        return None
    return str(value).strip() or None


def open_incident(event: SeverityAssigned, now: datetime) -> IncidentRow:
    """The incident as its first known SeverityAssigned describes it."""
    services = _merge([], [event.service, *event.services])
    return IncidentRow(
        id=event.incident_id,
        fingerprint=event.fingerprint,
        title=event.title or f"{event.service} incident",
        service=event.service,
        services=services,
        status="open",
        severity=event.severity.value,
        root_cause=root_cause_of(event),
        data_loss=event.data_loss,
        security=event.security,
        opened_at=event.opened_at,
        response_due_at=event.response_due_at,
        escalation_level=0,
        updated_at=now,
    )


def apply(row: IncidentRow, event: Event) -> bool:
    """Change `row` as `event` says; True when something changed."""
    if isinstance(event, SeverityAssigned):
        return _severity(row, event)
    if isinstance(event, AlertCorrelated):
        return _correlated(row, event)
    if isinstance(event, IncidentAcknowledged):
        changed = False
        if row.acknowledged_at is None:
            row.acknowledged_at = event.occurred_at
            changed = True
        if row.status == "open":
            row.status = "acknowledged"
            changed = True
        return changed
    if isinstance(event, IncidentResolved):
        if row.status == "resolved":
            return False
        row.status = "resolved"
        row.resolved_at = event.occurred_at
        row.resolution_note = event.note or None
        return True
    if isinstance(event, EscalationDue):
        if event.level <= (row.escalation_level or 0):
            return False
        row.escalation_level = event.level
        row.escalated_at = event.occurred_at
        return True
    if isinstance(event, RoleAssigned):
        assert event.role in ROLES
        if getattr(row, event.role) == event.person:
            return False
        setattr(row, event.role, event.person)
        return True
    return False


def _severity(row: IncidentRow, event: SeverityAssigned) -> bool:
    changed = False
    if event.severity.rank < Severity(row.severity).rank:
        row.severity = event.severity.value
        changed = True
    services = _merge(row.services or [], [event.service, *event.services])
    if services != (row.services or []):
        row.services = services
        changed = True
    # Severity only rises, and with it the response time shortens: the earliest deadline
    # holds, whatever order the assignments arrive in.
    if row.response_due_at is None or event.response_due_at < as_utc(row.response_due_at):
        row.response_due_at = event.response_due_at
        changed = True
    cause = root_cause_of(event)
    if cause and cause != row.root_cause:
        row.root_cause = cause
        changed = True
    if event.data_loss and not row.data_loss:
        row.data_loss = True
        changed = True
    if event.security and not row.security:
        row.security = True
        changed = True
    return changed


def _correlated(row: IncidentRow, event: AlertCorrelated) -> bool:
    changed = False
    services = _merge(row.services or [], [event.service])
    if services != (row.services or []):
        row.services = services
        changed = True
    if event.status is AlertStatus.RESOLVED and row.status in ("open", "acknowledged"):
        row.status = "mitigated"
        row.mitigated_at = event.occurred_at
        changed = True
    elif event.status is AlertStatus.FIRING and row.status == "mitigated":
        # The problem came back: the incident is live again.
        row.status = "acknowledged" if row.acknowledged_at else "open"
        row.mitigated_at = None
        changed = True
    return changed


def _merge(known: list[str], more: list[str]) -> list[str]:
    out = list(known)
    for service in more:
        if service and service not in out:
            out.append(service)
    return out
