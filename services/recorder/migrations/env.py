"""Alembic environment of the recorder: runs on the connection `db.migrate` hands over."""

from __future__ import annotations

from alembic import context

from services.recorder.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("recorder migrations run through services.recorder.db.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite changes tables by copying them; PostgreSQL alters them in place.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
