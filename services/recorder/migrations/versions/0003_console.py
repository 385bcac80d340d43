"""The operator console: the incident's response deadline and escalation level in the
projection, and the silence an event belongs to (a silence's audit trail).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as table:
        table.add_column(sa.Column("response_due_at", sa.DateTime(timezone=True), nullable=True))
        table.add_column(
            sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0")
        )
        table.add_column(sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("events") as table:
        table.add_column(sa.Column("silence_id", sa.String(64), nullable=True))
    op.create_index("ix_events_silence", "events", ["silence_id"])


def downgrade() -> None:
    op.drop_index("ix_events_silence", table_name="events")
    with op.batch_alter_table("events") as table:
        table.drop_column("silence_id")
    with op.batch_alter_table("incidents") as table:
        table.drop_column("escalated_at")
        table.drop_column("escalation_level")
        table.drop_column("response_due_at")
