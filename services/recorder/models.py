"""The recorder's tables (SQLAlchemy 2).

* `events`: the timeline — every event once, except repeats of an alert storm;
* `alert_occurrences`: an alert storm as counted runs (one row per run of one fingerprint
  in one status), so 100,000 identical alerts are one timeline row and one counter;
* `processed_events`: ids of the events that were only counted, so a redelivered repeat
  does not count twice (pruned after a retention far longer than any redelivery);
* `incidents` and `incident_services`: the incident projection kept current from events.

The schema is created and changed by the Alembic migrations in `migrations/`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ROLES",
    "AlertOccurrenceRow",
    "Base",
    "EventRow",
    "IncidentRow",
    "IncidentServiceRow",
    "ProcessedEventRow",
]

#: The runbook's response roles, as `RoleAssigned.role` names them.
ROLES = ("incident_commander", "technical_lead", "operations_lead", "communications_lead")


class Base(DeclarativeBase):
    pass


def _not_null_index(name: str, column: str, *more: str) -> Index:
    """An index of the rows where `column` is set (partial, in SQLite and PostgreSQL)."""
    where = text(f"{column} IS NOT NULL")
    return Index(name, column, *more, sqlite_where=where, postgresql_where=where)


class EventRow(Base):
    """One event on the timeline; `event_id` makes redelivery idempotent."""

    __tablename__ = "events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    incident_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    causation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    action_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    silence_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)

    # Most rows have no causation, action, silence (and an alert no incident until triage
    # links it): those indexes leave NULL out (migration 0004), one index write less each.
    __table_args__ = (
        _not_null_index("ix_events_incident", "incident_id", "occurred_at"),
        _not_null_index("ix_events_causation", "causation_id"),
        _not_null_index("ix_events_action", "action_id"),
        Index("ix_events_recorded", "recorded_at"),
        _not_null_index("ix_events_silence", "silence_id"),
    )


class ProcessedEventRow(Base):
    """An event that was counted rather than stored as a row (the dedup ledger)."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_processed_events_at", "processed_at"),)


class AlertOccurrenceRow(Base):
    """A run of one alert fingerprint in one status: the first event is on the timeline,
    the rest are counted here.

    `kind` is the event type counted (AlertRaised, or AlertCorrelated when triage joins
    the repeats to an incident); `scope` is "" for raw alerts and the incident id for
    correlations. Only one run per (kind, scope, fingerprint) is current.
    """

    __tablename__ = "alert_occurrences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(36))
    fingerprint: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    service: Mapped[str] = mapped_column(String(128))
    incident_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    first_event_id: Mapped[str] = mapped_column(String(36))
    last_event_id: Mapped[str] = mapped_column(String(36))
    count: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    is_current: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        # Led by the fingerprint: one index both keeps a run current per key and finds a
        # batch's runs by fingerprint (a second index of these random keys cost a page write
        # per new run; migration 0004).
        Index(
            "ux_alert_occurrences_current",
            "fingerprint",
            "kind",
            "scope",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
        Index("ix_alert_occurrences_first", "first_event_id"),
        _not_null_index("ix_alert_occurrences_incident", "incident_id"),
    )


class IncidentRow(Base):
    """The current state of an incident, kept up to date from its events."""

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(256))
    title: Mapped[str] = mapped_column(Text, default="")
    service: Mapped[str] = mapped_column(String(128))
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(32), default="open")
    severity: Mapped[str] = mapped_column(String(4))
    root_cause: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolution_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    data_loss: Mapped[bool] = mapped_column(Boolean, default=False)
    security: Mapped[bool] = mapped_column(Boolean, default=False)
    incident_commander: Mapped[str | None] = mapped_column(String(128), nullable=True)
    technical_lead: Mapped[str | None] = mapped_column(String(128), nullable=True)
    operations_lead: Mapped[str | None] = mapped_column(String(128), nullable=True)
    communications_lead: Mapped[str | None] = mapped_column(String(128), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    mitigated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    response_due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_incidents_status", "status", "opened_at"),
        Index("ix_incidents_opened", "opened_at"),
        Index("ix_incidents_updated", "updated_at"),
    )


class IncidentServiceRow(Base):
    """One service involved in an incident (for filters and per-service stats)."""

    __tablename__ = "incident_services"

    incident_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    service: Mapped[str] = mapped_column(String(128), primary_key=True)

    __table_args__ = (Index("ix_incident_services_service", "service"),)
