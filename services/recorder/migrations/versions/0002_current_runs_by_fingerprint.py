"""Current alert runs by fingerprint: the recorder reads a batch's runs with one index probe
per fingerprint (the unique index leads with kind and scope).

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_alert_occurrences_current_fingerprint",
        "alert_occurrences",
        ["fingerprint"],
        sqlite_where=sa.text("is_current"),
        postgresql_where=sa.text("is_current"),
    )


def downgrade() -> None:
    op.drop_index("ix_alert_occurrences_current_fingerprint", table_name="alert_occurrences")
