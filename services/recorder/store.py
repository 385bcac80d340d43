"""The recorder's queries: idempotent event inserts, the incident projection, reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from services.recorder.models import Base, EventRow, IncidentRow
from shared.events import (
    Event,
    IncidentAcknowledged,
    IncidentResolved,
    SeverityAssigned,
    utcnow,
)

__all__ = ["TimelineStore", "as_utc"]


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class TimelineStore:
    """Every event once, and incidents kept current from them."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("postgresql"):
            kwargs.update(pool_size=5, max_overflow=5, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )

    async def create_schema(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def record(self, event: Event) -> bool:
        """Store `event` and update its incident; False if it was already stored."""
        async with self._sessions.begin() as session:
            stmt = (
                self._insert(EventRow)
                .values(
                    event_id=event.event_id,
                    event_type=event.event_type,
                    incident_id=event.incident_id,
                    causation_id=event.causation_id,
                    occurred_at=event.occurred_at,
                    recorded_at=utcnow(),
                    payload=event.model_dump(mode="json"),
                )
                .on_conflict_do_nothing(index_elements=["event_id"])
            )
            result = await session.execute(stmt)
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            await self._project(session, event)
            return True

    async def _project(self, session: AsyncSession, event: Event) -> None:
        if not event.incident_id:
            return
        row = await session.get(IncidentRow, event.incident_id, with_for_update=True)
        now = utcnow()
        if isinstance(event, SeverityAssigned):
            if row is None:
                session.add(
                    IncidentRow(
                        id=event.incident_id,
                        fingerprint=event.fingerprint,
                        title=event.title,
                        service=event.service,
                        status="open",
                        severity=event.severity.value,
                        opened_at=event.opened_at,
                        updated_at=now,
                    )
                )
            elif event.severity.rank < int(row.severity[1]):  # severity never falls silently
                row.severity = event.severity.value
                row.updated_at = now
            return
        if row is None:
            return
        if isinstance(event, IncidentAcknowledged) and row.status == "open":
            row.status = "acknowledged"
            row.acknowledged_at = event.occurred_at
            row.updated_at = now
        elif isinstance(event, IncidentResolved) and row.status != "resolved":
            row.status = "resolved"
            row.resolved_at = event.occurred_at
            row.updated_at = now

    async def list_incidents(
        self,
        *,
        status: str | None = None,
        severity: str | None = None,
        service: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[IncidentRow]:
        query = select(IncidentRow).order_by(IncidentRow.opened_at.desc(), IncidentRow.id)
        if status:
            query = query.where(IncidentRow.status == status)
        if severity:
            query = query.where(IncidentRow.severity == severity)
        if service:
            query = query.where(IncidentRow.service == service)
        if since:
            query = query.where(IncidentRow.opened_at >= since)
        async with self._sessions() as session:
            return list((await session.scalars(query.limit(limit).offset(offset))).all())

    async def get_incident(self, incident_id: str) -> IncidentRow | None:
        async with self._sessions() as session:
            return await session.get(IncidentRow, incident_id)

    async def timeline(self, incident_id: str) -> list[EventRow]:
        # An alert carries no incident id; triage's answer to it (causation_id) does. The
        # link is made here, at read time, so the order the streams are recorded in and
        # concurrent recorders cannot lose it.
        caused = select(EventRow.causation_id).where(EventRow.incident_id == incident_id)
        query = (
            select(EventRow)
            .where(or_(EventRow.incident_id == incident_id, EventRow.event_id.in_(caused)))
            .order_by(EventRow.occurred_at, EventRow.recorded_at, EventRow.event_id)
        )
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())
