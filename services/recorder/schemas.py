"""The recorder API's shapes: what it answers and the bodies of operator commands."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.recorder.db import as_utc
from services.recorder.models import AlertOccurrenceRow, IncidentRow
from services.recorder.queries import TimelineItem

__all__ = [
    "Accepted",
    "AckIn",
    "ApproveIn",
    "IncidentDetail",
    "IncidentOut",
    "NextEscalation",
    "NoteIn",
    "Occurrences",
    "Phase",
    "RefuseIn",
    "ResolveIn",
    "RoleIn",
    "Roles",
    "SeverityChange",
    "SeverityStats",
    "Stats",
    "TimelineEntry",
]

Status = Literal["open", "acknowledged", "mitigated", "resolved"]
SeverityName = Literal["P0", "P1", "P2", "P3"]
RoleName = Literal["incident_commander", "technical_lead", "operations_lead", "communications_lead"]
_PRINTABLE = r"^[^\x00-\x1f]+$"


def _person(description: str) -> Any:
    return Field(
        default="operator",
        min_length=1,
        max_length=128,
        pattern=_PRINTABLE,
        description=description,
    )


def _person_opt(description: str) -> Any:
    return Field(
        default=None, min_length=1, max_length=128, pattern=_PRINTABLE, description=description
    )


class Roles(BaseModel):
    incident_commander: str | None = Field(description="Incident Commander (IC).")
    technical_lead: str | None = Field(description="Technical Lead (TL).")
    operations_lead: str | None = Field(description="Operations Lead (OL).")
    communications_lead: str | None = Field(description="Communications Lead (CL).")


class NextEscalation(BaseModel):
    level: int = Field(description="The level it will reach (1 on-call … 5 executive).")
    due_at: datetime = Field(description="When, unless acknowledged or resolved before.")


class IncidentOut(BaseModel):
    id: str = Field(description="Incident id.")
    fingerprint: str = Field(description="Fingerprint of the alert that opened it.")
    title: str = Field(description="Short title.")
    service: str = Field(description="Service of the alert that opened it.")
    services: list[str] = Field(description="Every service involved.")
    status: Status = Field(description="open, acknowledged, mitigated or resolved.")
    severity: SeverityName = Field(description="P0 … P3 (the highest it reached).")
    root_cause: str | None = Field(description="Root cause, when known.")
    resolution_note: str | None = Field(description="The note given when it was resolved.")
    data_loss: bool = Field(description="Data loss was reported.")
    security: bool = Field(description="A security breach is suspected.")
    roles: Roles = Field(description="Who holds the runbook's roles.")
    opened_at: datetime = Field(description="When it opened.")
    acknowledged_at: datetime | None = Field(description="When first acknowledged.")
    mitigated_at: datetime | None = Field(description="When its alerts recovered.")
    resolved_at: datetime | None = Field(description="When resolved.")
    updated_at: datetime = Field(description="Last change.")
    response_due_at: datetime | None = Field(
        default=None,
        description="When the runbook's response time of its severity runs out "
        "(opened + P0 15 min, P1 1 h, P2 4 h, P3 24 h).",
    )
    escalation_level: int = Field(
        default=0, description="Highest escalation level reached (0: none)."
    )
    escalated_at: datetime | None = Field(default=None, description="When it reached that level.")
    next_escalation: NextEscalation | None = Field(
        default=None, description="The escalator's next time step, if one is pending."
    )

    @classmethod
    def of(cls, row: IncidentRow, next_escalation: NextEscalation | None = None) -> IncidentOut:
        return cls(
            id=row.id,
            fingerprint=row.fingerprint,
            title=row.title,
            service=row.service,
            services=list(row.services or []),
            status=row.status,
            severity=row.severity,
            root_cause=row.root_cause,
            resolution_note=row.resolution_note,
            data_loss=row.data_loss,
            security=row.security,
            roles=Roles(
                incident_commander=row.incident_commander,
                technical_lead=row.technical_lead,
                operations_lead=row.operations_lead,
                communications_lead=row.communications_lead,
            ),
            opened_at=as_utc(row.opened_at),
            acknowledged_at=as_utc(row.acknowledged_at),
            mitigated_at=as_utc(row.mitigated_at),
            resolved_at=as_utc(row.resolved_at),
            updated_at=as_utc(row.updated_at),
            response_due_at=as_utc(row.response_due_at),
            escalation_level=row.escalation_level or 0,
            escalated_at=as_utc(row.escalated_at),
            next_escalation=next_escalation,
        )


class Occurrences(BaseModel):
    """A run of repeats of one alert: one timeline row stands for `count` alerts."""

    fingerprint: str = Field(description="The alert's fingerprint.")
    service: str = Field(description="The alert's service.")
    status: str = Field(description="firing or resolved.")
    count: int = Field(description="How many alerts the run holds (the first included).")
    first_at: datetime = Field(description="The first one.")
    last_at: datetime = Field(description="The latest one.")
    first_event_id: str = Field(description="The event on the timeline.")
    last_event_id: str = Field(description="The latest event counted.")

    @classmethod
    def of(cls, run: AlertOccurrenceRow) -> Occurrences:
        return cls(
            fingerprint=run.fingerprint,
            service=run.service,
            status=run.status,
            count=run.count,
            first_at=as_utc(run.first_at),
            last_at=as_utc(run.last_at),
            first_event_id=run.first_event_id,
            last_event_id=run.last_event_id,
        )


class SeverityChange(BaseModel):
    at: datetime = Field(description="When triage assigned it.")
    severity: SeverityName = Field(description="The severity assigned.")
    previous_severity: SeverityName | None = Field(description="The one before, if any.")
    reason: str = Field(description="Why.")
    event_id: str = Field(description="The SeverityAssigned event.")


class Phase(BaseModel):
    phase: Literal["detected", "triaged", "contained", "fixed", "verified", "resolved"] = Field(
        description="A step of the runbook's response (Phases 1–6)."
    )
    at: datetime | None = Field(description="When the incident reached it; null: not (yet).")


class IncidentDetail(IncidentOut):
    phases: list[Phase] = Field(
        default_factory=list, description="Its path through the runbook's phases, in order."
    )
    severity_history: list[SeverityChange] = Field(description="Every severity, oldest first.")
    alerts: list[Occurrences] = Field(description="The incident's alerts, as counted runs.")
    alert_count: int = Field(description="How many alerts in all.")


class TimelineEntry(BaseModel):
    event_id: str = Field(description="The event's id.")
    event_type: str = Field(description="AlertRaised, SeverityAssigned, …")
    occurred_at: datetime = Field(description="When it happened.")
    recorded_at: datetime = Field(description="When the recorder stored it.")
    incident_id: str | None = Field(description="The incident.")
    causation_id: str | None = Field(description="The event this one reacts to.")
    effects: list[str] = Field(description="Events on this timeline that react to this one.")
    occurrences: Occurrences | None = Field(description="For an alert: the repeats it heads.")
    event: dict[str, Any] = Field(description="The event as received.")

    @classmethod
    def of(cls, item: TimelineItem, effects: list[str] | None = None) -> TimelineEntry:
        row = item.row
        return cls(
            event_id=row.event_id,
            event_type=row.event_type,
            occurred_at=as_utc(row.occurred_at),
            recorded_at=as_utc(row.recorded_at),
            incident_id=row.incident_id,
            causation_id=row.causation_id,
            effects=effects or [],
            occurrences=Occurrences.of(item.occurrence) if item.occurrence else None,
            event=row.payload,
        )


class SeverityStats(BaseModel):
    incidents: int = Field(description="Incidents of this severity.")
    acknowledged: int = Field(description="Of them, acknowledged.")
    resolved: int = Field(description="Of them, resolved.")
    mtta_s: float | None = Field(description="Mean time to acknowledge, seconds.")
    mttr_s: float | None = Field(description="Mean time to resolve (from opening), seconds.")


class Stats(BaseModel):
    since: datetime | None = Field(description="Incidents opened since then (all when null).")
    incidents: int = Field(description="Incidents counted.")
    by_status: dict[str, int] = Field(description="Incidents per status.")
    by_severity: dict[str, SeverityStats] = Field(description="MTTA and MTTR per severity.")
    by_service: dict[str, int] = Field(description="Incidents per service involved.")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AckIn(_Body):
    by: str = _person("Who acknowledges.")


class ResolveIn(_Body):
    by: str = _person("Who resolves.")
    note: str = Field(default="", max_length=16384, description="Resolution note.")


def _one_name(body: BaseModel, preferred: str, deprecated: str) -> str:
    """`by` is the name every command takes; an older field is accepted for a release."""
    first, second = getattr(body, preferred), getattr(body, deprecated)
    if first is not None and second is not None and first != second:
        raise ValueError(f"{preferred}: give {preferred} (or the older {deprecated}), not both")
    return str(first or second or "operator")


class NoteIn(_Body):
    by: str | None = _person_opt("Who writes the note.")
    author: str | None = _person_opt("Deprecated: the older name of `by`.")
    text: str = Field(min_length=1, max_length=16384, description="The note.")

    @model_validator(mode="after")
    def _writer(self) -> NoteIn:
        object.__setattr__(self, "by", _one_name(self, "by", "author"))
        return self


class RoleIn(_Body):
    role: RoleName = Field(description="The runbook role.")
    person: str = Field(min_length=1, max_length=128, pattern=_PRINTABLE, description="Who.")


class ApproveIn(_Body):
    by: str | None = _person_opt("Who approves (required: `by`, or the older `approver`).")
    approver: str | None = _person_opt("Deprecated: the older name of `by`.")
    action: str = Field(
        min_length=1,
        max_length=64,
        description="The action's name (e.g. docker.system_prune), required: refused with 409 "
        "when the action waiting is another one.",
    )

    @model_validator(mode="after")
    def _approver(self) -> ApproveIn:
        # An approval says who approves: one from nobody is refused (issue 18).
        if self.by is None and self.approver is None:
            raise ValueError("by: who approves is required")
        object.__setattr__(self, "by", _one_name(self, "by", "approver"))
        return self


class RefuseIn(_Body):
    by: str = _person("Who refuses.")
    action: str = Field(
        min_length=1, max_length=64, description="The action's name, as a check (409 if not)."
    )
    reason: str = Field(default="", max_length=2000, description="Why.")


class Accepted(BaseModel):
    event_id: str = Field(description="The id of the event published.")
    event_type: str = Field(description="Its type.")
    stream: str = Field(description="The stream it was published on.")


class DrillIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: Literal[
        "backend-down", "postgres-down", "ollama-no-models", "ollama-down", "memory-pressure"
    ] = Field(description="The runbook failure to inject.")
    by: str = Field(default="operator", min_length=1, max_length=128, description="Who runs it.")


class DrillPhase(BaseModel):
    phase: str = Field(description="diagnostics, protect, fix, verify or followup.")
    started_s: float = Field(description="Seconds from the fault to its first step's request.")
    finished_s: float | None = Field(description="… to its last step's answer (null: pending).")


class DrillStep(BaseModel):
    step: int | None = Field(description="Index of the step in the playbook.")
    phase: str | None = Field(description="Its phase.")
    action: str | None = Field(description="The action.")
    target: str = Field(description="What it acted on.")
    requested_s: float = Field(description="Seconds from the fault to the request.")
    outcome: str = Field(description="The remediator's final answer, or pending.")
    finished_s: float | None = Field(description="Seconds from the fault to the answer.")
    detail: str = Field(description="The answer's detail (shortened).")


class DrillReport(BaseModel):
    """A drill and how fast the loop closed; every time is in seconds from the fault."""

    id: str = Field(description="The drill's id.")
    scenario: str = Field(description="The scenario.")
    service: str = Field(description="The service broken on purpose.")
    target: str = Field(description="Its container.")
    fault: str = Field(description="What was done.")
    by: str = Field(description="Who ran it.")
    injected_at: datetime = Field(description="When the fault was injected (t = 0).")
    status: Literal["injected", "detected", "verified", "failed", "resolved"] = Field(
        description="How far the loop got."
    )
    incident_id: str | None = Field(description="The drill's incident, once one opened.")
    playbook: str | None = Field(description="The playbook triage chose.")
    detected_s: float | None = Field(description="To the incident's opening.")
    verified_s: float | None = Field(description="To verify.all succeeding.")
    resolved_s: float | None = Field(description="To the incident's resolution.")
    resolved_by: str | None = Field(
        description="triage: resolved by itself after the quiet period."
    )
    phases: list[DrillPhase] = Field(description="Each playbook phase.")
    steps: list[DrillStep] = Field(description="Each step with its outcome.")
