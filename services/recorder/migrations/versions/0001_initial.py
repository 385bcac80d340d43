"""The recorder's first schema: timeline, alert occurrences, dedup ledger, incidents.

Revision ID: 0001
Revises:
Create Date: 2025-08-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("incident_id", sa.String(36), nullable=True),
        sa.Column("causation_id", sa.String(36), nullable=True),
        sa.Column("action_id", sa.String(64), nullable=True),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
    )
    op.create_index("ix_events_incident", "events", ["incident_id", "occurred_at"])
    op.create_index("ix_events_causation", "events", ["causation_id"])
    op.create_index("ix_events_action", "events", ["action_id"])
    op.create_index("ix_events_recorded", "events", ["recorded_at"])

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("processed_at", _TS, nullable=False),
    )
    op.create_index("ix_processed_events_at", "processed_events", ["processed_at"])

    op.create_table(
        "alert_occurrences",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(36), nullable=False),
        sa.Column("fingerprint", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("incident_id", sa.String(36), nullable=True),
        sa.Column("first_event_id", sa.String(36), nullable=False),
        sa.Column("last_event_id", sa.String(36), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", _TS, nullable=False),
        sa.Column("last_at", _TS, nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ux_alert_occurrences_current",
        "alert_occurrences",
        ["kind", "scope", "fingerprint"],
        unique=True,
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )
    op.create_index("ix_alert_occurrences_first", "alert_occurrences", ["first_event_id"])
    op.create_index("ix_alert_occurrences_incident", "alert_occurrences", ["incident_id"])

    op.create_table(
        "incidents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("fingerprint", sa.String(256), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(4), nullable=False),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("data_loss", sa.Boolean(), nullable=False),
        sa.Column("security", sa.Boolean(), nullable=False),
        sa.Column("incident_commander", sa.String(128), nullable=True),
        sa.Column("technical_lead", sa.String(128), nullable=True),
        sa.Column("operations_lead", sa.String(128), nullable=True),
        sa.Column("communications_lead", sa.String(128), nullable=True),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("acknowledged_at", _TS, nullable=True),
        sa.Column("mitigated_at", _TS, nullable=True),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_incidents_status", "incidents", ["status", "opened_at"])
    op.create_index("ix_incidents_opened", "incidents", ["opened_at"])
    op.create_index("ix_incidents_updated", "incidents", ["updated_at"])

    op.create_table(
        "incident_services",
        sa.Column("incident_id", sa.String(36), primary_key=True),
        sa.Column("service", sa.String(128), primary_key=True),
    )
    op.create_index("ix_incident_services_service", "incident_services", ["service"])


def downgrade() -> None:
    for table in ("incident_services", "incidents", "alert_occurrences", "processed_events"):
        op.drop_table(table)
    op.drop_table("events")
