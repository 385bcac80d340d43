"""The recorder API's response shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.recorder.models import EventRow, IncidentRow
from services.recorder.store import as_utc

__all__ = ["IncidentOut", "TimelineEntry"]


class IncidentOut(BaseModel):
    id: str = Field(description="Incident id.")
    fingerprint: str = Field(description="Fingerprint of the alert that opened it.")
    title: str = Field(description="Short title.")
    service: str = Field(description="Service of the incident.")
    status: str = Field(description="open, acknowledged, mitigated or resolved.")
    severity: str = Field(description="P0 … P3.")
    opened_at: datetime = Field(description="When it opened.")
    acknowledged_at: datetime | None = Field(description="When acknowledged.")
    resolved_at: datetime | None = Field(description="When resolved.")
    updated_at: datetime = Field(description="Last change.")

    @classmethod
    def of(cls, row: IncidentRow) -> IncidentOut:
        return cls(
            id=row.id,
            fingerprint=row.fingerprint,
            title=row.title,
            service=row.service,
            status=row.status,
            severity=row.severity,
            opened_at=as_utc(row.opened_at),
            acknowledged_at=as_utc(row.acknowledged_at),
            resolved_at=as_utc(row.resolved_at),
            updated_at=as_utc(row.updated_at),
        )


class TimelineEntry(BaseModel):
    event_id: str = Field(description="The event's id.")
    event_type: str = Field(description="AlertRaised, SeverityAssigned, …")
    occurred_at: datetime = Field(description="When it happened.")
    causation_id: str | None = Field(description="The event this one reacts to.")
    event: dict[str, Any] = Field(description="The event as received.")

    @classmethod
    def of(cls, row: EventRow) -> TimelineEntry:
        return cls(
            event_id=row.event_id,
            event_type=row.event_type,
            occurred_at=as_utc(row.occurred_at),
            causation_id=row.causation_id,
            event=row.payload,
        )
