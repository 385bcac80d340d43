"""Less write amplification (issue 16).

* Indexes on columns that are mostly NULL leave the NULL rows out. Every alert has no
  causation, action or silence, and no incident until triage links it; each of those rows
  cost one entry in each of these indexes, which every query of them skips anyway (they
  all compare the column to a value, or ask IS NOT NULL).
* Current alert runs had two indexes keyed by the fingerprint (random: each new run dirtied
  a page of each): the unique one now leads with the fingerprint and serves the lookups by
  fingerprint. (It led with kind and scope for the closing of an incident's correlation
  runs by scope; those are found by their incident_id, which equals their scope.)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (index, table, columns, the column that is mostly NULL)
_PARTIAL = [
    ("ix_events_incident", "events", ["incident_id", "occurred_at"], "incident_id"),
    ("ix_events_causation", "events", ["causation_id"], "causation_id"),
    ("ix_events_action", "events", ["action_id"], "action_id"),
    ("ix_events_silence", "events", ["silence_id"], "silence_id"),
    ("ix_alert_occurrences_incident", "alert_occurrences", ["incident_id"], "incident_id"),
]


_RUNS = "alert_occurrences"
_CURRENT = sa.text("is_current")


def _current_index(name: str, columns: list[str], *, unique: bool = False) -> None:
    op.create_index(
        name, _RUNS, columns, unique=unique, sqlite_where=_CURRENT, postgresql_where=_CURRENT
    )


def upgrade() -> None:
    for name, table, columns, nullable in _PARTIAL:
        op.drop_index(name, table_name=table)
        where = sa.text(f"{nullable} IS NOT NULL")
        op.create_index(name, table, columns, sqlite_where=where, postgresql_where=where)
    op.drop_index("ix_alert_occurrences_current_fingerprint", table_name=_RUNS)
    op.drop_index("ux_alert_occurrences_current", table_name=_RUNS)
    _current_index("ux_alert_occurrences_current", ["fingerprint", "kind", "scope"], unique=True)


def downgrade() -> None:
    for name, table, columns, _nullable in _PARTIAL:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)
    op.drop_index("ux_alert_occurrences_current", table_name=_RUNS)
    _current_index("ux_alert_occurrences_current", ["kind", "scope", "fingerprint"], unique=True)
    _current_index("ix_alert_occurrences_current_fingerprint", ["fingerprint"])
