"""The recorder's read path: incidents, timelines with their alert counts, stats inputs,
drills."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.recorder.models import AlertOccurrenceRow, EventRow, IncidentRow, IncidentServiceRow

__all__ = ["IncidentFilter", "Reader", "TimelineItem"]


@dataclass(frozen=True)
class IncidentFilter:
    status: str | None = None
    severity: str | None = None
    service: str | None = None
    since: datetime | None = None

    def apply(self, query: Select[IncidentRow]) -> Select[IncidentRow]:
        if self.status:
            query = query.where(IncidentRow.status == self.status)
        if self.severity:
            query = query.where(IncidentRow.severity == self.severity)
        if self.service:
            query = query.where(
                exists()
                .where(IncidentServiceRow.incident_id == IncidentRow.id)
                .where(IncidentServiceRow.service == self.service)
            )
        if self.since:
            query = query.where(IncidentRow.opened_at >= self.since)
        return query


@dataclass(frozen=True)
class TimelineItem:
    """A timeline row, and the run of repeats it heads when it is a stormy alert."""

    row: EventRow
    occurrence: AlertOccurrenceRow | None


class Reader:
    """Queries over the recorder's tables (no writes)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def list_incidents(
        self, where: IncidentFilter, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[IncidentRow], int]:
        """One page of incidents, newest first, and how many match in all."""
        query = where.apply(select(IncidentRow))
        async with self._sessions() as session:
            total = await session.scalar(select(func.count()).select_from(query.subquery()))
            page = await session.scalars(
                query.order_by(IncidentRow.opened_at.desc(), IncidentRow.id)
                .limit(limit)
                .offset(offset)
            )
            return list(page.all()), int(total or 0)

    async def get_incident(self, incident_id: str) -> IncidentRow | None:
        async with self._sessions() as session:
            return await session.get(IncidentRow, incident_id)

    async def timeline(self, incident_id: str) -> list[TimelineItem]:
        """The incident's events in the order they happened, with alert repeat counts."""
        async with self._sessions() as session:
            rows = list(
                (
                    await session.scalars(
                        select(EventRow)
                        .where(EventRow.incident_id == incident_id)
                        .order_by(EventRow.occurred_at, EventRow.recorded_at, EventRow.event_id)
                    )
                ).all()
            )
            runs = await session.scalars(
                select(AlertOccurrenceRow).where(
                    AlertOccurrenceRow.first_event_id.in_([r.event_id for r in rows])
                )
            )
            by_first = {run.first_event_id: run for run in runs.all()}
        return [TimelineItem(row, by_first.get(row.event_id)) for row in rows]

    async def occurrences(self, incident_id: str) -> list[AlertOccurrenceRow]:
        """The raw alert runs of an incident (what the storm looked like)."""
        async with self._sessions() as session:
            runs = await session.scalars(
                select(AlertOccurrenceRow)
                .where(AlertOccurrenceRow.incident_id == incident_id)
                .where(AlertOccurrenceRow.kind == "AlertRaised")
                .order_by(AlertOccurrenceRow.first_at, AlertOccurrenceRow.id)
            )
            return list(runs.all())

    async def requested_action(self, action_id: str) -> EventRow | None:
        """The ActionRequested of `action_id`; None when no such action was recorded."""
        async with self._sessions() as session:
            return (
                await session.scalars(
                    select(EventRow)
                    .where(EventRow.action_id == action_id)
                    .where(EventRow.event_type == "ActionRequested")
                    .limit(1)
                )
            ).first()

    async def final_completion(self, action_id: str) -> EventRow | None:
        """The remediator's final answer to `action_id` (not `awaiting_approval`), if any."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(EventRow)
                .where(EventRow.action_id == action_id)
                .where(EventRow.event_type == "ActionCompleted")
            )
            for row in rows:
                if row.payload.get("outcome") != "awaiting_approval":
                    return row
            return None

    async def actions_of_unresolved(self) -> list[EventRow]:
        """Every action event (requested, answered, approved, refused) of the incidents not
        yet resolved, oldest first: what the pending approvals are found in."""
        unresolved = select(IncidentRow.id).where(IncidentRow.status != "resolved")
        async with self._sessions() as session:
            rows = await session.scalars(
                select(EventRow)
                .where(EventRow.incident_id.in_(unresolved))
                .where(EventRow.action_id.is_not(None))
                .order_by(EventRow.occurred_at, EventRow.recorded_at)
            )
            return list(rows.all())

    async def silence_history(self, silence_id: str) -> list[EventRow]:
        """A silence's audit trail: made, the alerts it kept quiet, expired."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(EventRow)
                .where(EventRow.silence_id == silence_id)
                .order_by(EventRow.occurred_at, EventRow.recorded_at)
            )
            return list(rows.all())

    async def incidents_for_stats(self, since: datetime | None) -> list[IncidentRow]:
        query = select(IncidentRow)
        if since:
            query = query.where(IncidentRow.opened_at >= since)
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def incidents_per_service(self, since: datetime | None) -> dict[str, int]:
        query = (
            select(IncidentServiceRow.service, func.count())
            .join(IncidentRow, IncidentRow.id == IncidentServiceRow.incident_id)
            .group_by(IncidentServiceRow.service)
        )
        if since:
            query = query.where(IncidentRow.opened_at >= since)
        async with self._sessions() as session:
            return {str(s): int(n) for s, n in (await session.execute(query)).all()}

    async def recorded_since(
        self, after: datetime, incident_id: str | None = None, limit: int = 500
    ) -> list[EventRow]:
        """Timeline rows recorded at or after `after` (for the live stream): an incident's,
        or every incident's and silence's."""
        query = select(EventRow).where(EventRow.recorded_at >= after)
        query = query.where(
            EventRow.incident_id == incident_id
            if incident_id
            else or_(EventRow.incident_id.is_not(None), EventRow.silence_id.is_not(None))
        )
        async with self._sessions() as session:
            rows = await session.scalars(query.order_by(EventRow.recorded_at).limit(limit))
            return list(rows.all())

    async def public_candidates(self, resolved_since: datetime) -> list[IncidentRow]:
        """Incidents the status page may show: not resolved, or resolved since then."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(IncidentRow).where(
                    (IncidentRow.status != "resolved") | (IncidentRow.resolved_at >= resolved_since)
                )
            )
            return list(rows.all())

    async def events_of_type(self, event_type: str, incident_ids: list[str]) -> list[EventRow]:
        """Events of one type on these incidents, oldest first (the status page's updates)."""
        out: list[EventRow] = []
        async with self._sessions() as session:
            for start in range(0, len(incident_ids), 500):
                rows = await session.scalars(
                    select(EventRow)
                    .where(EventRow.event_type == event_type)
                    .where(EventRow.incident_id.in_(incident_ids[start : start + 500]))
                    .order_by(EventRow.occurred_at, EventRow.event_id)
                )
                out.extend(rows.all())
        return out

    async def updated_since(self, after: datetime, limit: int = 500) -> list[IncidentRow]:
        """Incidents changed at or after `after` (for the live stream)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(IncidentRow)
                .where(IncidentRow.updated_at >= after)
                .order_by(IncidentRow.updated_at)
                .limit(limit)
            )
            return list(rows.all())

    async def drills(self, limit: int = 20) -> list[EventRow]:
        """The latest DrillStarted events, newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(EventRow)
                .where(EventRow.event_type == "DrillStarted")
                .order_by(EventRow.occurred_at.desc())
                .limit(limit)
            )
            return list(rows.all())

    async def drill(self, drill_id: str) -> EventRow | None:
        """A drill's DrillStarted (its event id is the drill's id)."""
        async with self._sessions() as session:
            row = await session.get(EventRow, drill_id)
        return row if row is not None and row.event_type == "DrillStarted" else None

    async def drill_incident(
        self, drill_id: str, injected_at: datetime, window: timedelta
    ) -> IncidentRow | None:
        """The incident triage marked as the drill's: it opened within the drill's window
        (a SeverityAssigned naming the drill; few SeverityAssigned fall in one window)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(EventRow)
                .where(EventRow.event_type == "SeverityAssigned")
                .where(EventRow.occurred_at >= injected_at)
                .where(EventRow.occurred_at <= injected_at + window)
                .order_by(EventRow.occurred_at)
            )
            for row in rows.all():
                if row.payload.get("drill_id") == drill_id and row.incident_id:
                    return await session.get(IncidentRow, row.incident_id)
        return None
