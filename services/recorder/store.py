"""The recorder's write path: every event once, alert storms counted, incidents projected.

`record` runs in one transaction per event:

1. a redelivered event is recognised (timeline row or dedup ledger) and changes nothing;
2. an alert that repeats the current run of its fingerprint in the same status is only
   counted (`alert_occurrences`), everything else becomes a timeline row;
3. an alert and the triage event that reacts to it (causation_id) are linked to the
   incident whichever arrives first;
4. the incident projection is updated (`projection.py` decides how).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.recorder import projection
from services.recorder.db import as_utc, make_engine
from services.recorder.models import (
    AlertOccurrenceRow,
    EventRow,
    IncidentRow,
    IncidentServiceRow,
    ProcessedEventRow,
)
from shared.events import (
    EVENT_TYPES,
    ActionApproved,
    ActionCompleted,
    ActionRequested,
    AlertCorrelated,
    AlertRaised,
    Event,
    IncidentResolved,
    SeverityAssigned,
    utcnow,
)

__all__ = ["Outcome", "TimelineStore"]


class Outcome(enum.StrEnum):
    STORED = "stored"  # a new timeline row
    COUNTED = "counted"  # a repeat of an alert run
    DUPLICATE = "duplicate"  # seen before: nothing changed


class TimelineStore:
    """Every event once, alert storms as counters, incidents kept current."""

    def __init__(self, url: str, *, now: Callable[[], datetime] = utcnow) -> None:
        self.url = url
        self.engine: AsyncEngine = make_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._insert = (
            postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        )
        self._now = now
        # SQLite has one writer at a time anyway; taking turns in-process makes each
        # transaction see the ones before it whole (PostgreSQL uses advisory locks).
        self._sqlite_writer: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self.engine.dialect.name == "sqlite" else contextlib.nullcontext()
        )

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def record(self, event: Event) -> Outcome:
        """Store `event` (or count it) and update its incident."""
        (outcome,) = await self.record_many([event])
        return outcome

    async def record_many(self, events: list[Event]) -> list[Outcome]:
        """Store a batch in one transaction: all of it, or (on error) none of it."""
        async with self._sqlite_writer, self.sessions.begin() as session:
            await self._serialize(session, events)
            batch = await _BatchView.load(session, events)
            return [await self._record_in(session, event, batch) for event in events]

    async def _record_in(self, session: AsyncSession, event: Event, batch: _BatchView) -> Outcome:
        if event.event_id in batch.seen:
            return Outcome.DUPLICATE
        if isinstance(event, AlertRaised | AlertCorrelated) and await self._count_repeat(
            session, event, batch
        ):
            batch.seen.add(event.event_id)
            return Outcome.COUNTED
        incident_id = event.incident_id or batch.reactions.get(event.event_id)
        inserted = await session.execute(
            self._insert(EventRow)
            .values(
                event_id=event.event_id,
                event_type=event.event_type,
                incident_id=incident_id,
                causation_id=event.causation_id,
                action_id=_action_id(event),
                occurred_at=event.occurred_at,
                recorded_at=self._now(),
                payload=event.model_dump(mode="json"),
            )
            .on_conflict_do_nothing(index_elements=["event_id"])
        )
        if not inserted.rowcount:  # type: ignore[attr-defined]  # CursorResult
            return Outcome.DUPLICATE  # a concurrent delivery stored it first
        batch.seen.add(event.event_id)
        if isinstance(event, AlertRaised | AlertCorrelated):
            # A status change starts a new run; the previous one stays as history.
            current = batch.current_run(_run_key(event))
            if current is not None:
                current.is_current = False
            batch.runs[_run_key(event)] = self._start_run(session, event, incident_id)
        if event.incident_id and event.causation_id:
            batch.reactions.setdefault(event.causation_id, event.incident_id)
            await self._link_cause(session, event.causation_id, event.incident_id)
        if event.incident_id:
            await self._project(session, event)
        return Outcome.STORED

    async def prune_processed(self, retention: timedelta) -> int:
        """Forget counted event ids older than `retention`; returns how many."""
        async with self.sessions.begin() as session:
            result = await session.execute(
                delete(ProcessedEventRow).where(
                    ProcessedEventRow.processed_at < self._now() - retention
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]  # CursorResult

    async def _serialize(self, session: AsyncSession, events: list[Event]) -> None:
        """Make transactions that could miss each other's writes take turns.

        An alert and triage's reaction to it arrive on different streams and are handled
        concurrently; under READ COMMITTED each could look for the other before the other
        commits, and the link would be lost. Both lock the alert's id; repeats of one
        fingerprint lock it; events of one incident lock it. Keys are taken in order, so
        transactions cannot deadlock on them (a batch takes all its keys up front).
        """
        if self.engine.dialect.name != "postgresql":
            return
        keys: set[str] = set()
        for event in events:
            keys.add(f"ev:{event.event_id}")
            if event.causation_id:
                keys.add(f"ev:{event.causation_id}")
            if event.incident_id:
                keys.add(f"inc:{event.incident_id}")
            if isinstance(event, AlertRaised | AlertCorrelated):
                keys.add(f"fp:{event.fingerprint}")
        for key in sorted(keys):
            await session.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key}
            )

    # -- dedup and alert runs -------------------------------------------------------------

    async def _count_repeat(
        self, session: AsyncSession, event: AlertRaised | AlertCorrelated, batch: _BatchView
    ) -> bool:
        """Count `event` into the current run of its fingerprint if it repeats it."""
        run = batch.current_run(_run_key(event))
        if run is None or run.status != event.status.value:
            return False
        run.count += 1
        at = event.occurred_at
        if at >= as_utc(run.last_at):
            run.last_at = at
            run.last_event_id = event.event_id
        if at < as_utc(run.first_at):
            run.first_at = at
        if isinstance(event, AlertCorrelated) and event.incident_id:
            # A repeat correlated to an incident tells which incident the raw run is in.
            await session.execute(
                update(AlertOccurrenceRow)
                .where(AlertOccurrenceRow.kind == AlertRaised.EVENT_TYPE)
                .where(AlertOccurrenceRow.fingerprint == event.fingerprint)
                .where(AlertOccurrenceRow.is_current.is_(True))
                .where(AlertOccurrenceRow.incident_id.is_(None))
                .values(incident_id=event.incident_id)
            )
        await session.execute(
            self._insert(ProcessedEventRow)
            .values(event_id=event.event_id, processed_at=self._now())
            .on_conflict_do_nothing(index_elements=["event_id"])
        )
        return True

    def _start_run(
        self, session: AsyncSession, event: AlertRaised | AlertCorrelated, incident_id: str | None
    ) -> AlertOccurrenceRow:
        run = AlertOccurrenceRow(
            kind=event.event_type,
            scope=_scope(event),
            fingerprint=event.fingerprint,
            status=event.status.value,
            service=event.service,
            incident_id=incident_id,
            first_event_id=event.event_id,
            last_event_id=event.event_id,
            count=1,
            first_at=event.occurred_at,
            last_at=event.occurred_at,
            is_current=True,
        )
        session.add(run)
        return run

    # -- linking alerts and the events that react to them ------------------------------------

    async def _link_cause(self, session: AsyncSession, cause_id: str, incident_id: str) -> None:
        await session.execute(
            update(EventRow)
            .where(EventRow.event_id == cause_id)
            .where(EventRow.incident_id.is_(None))
            .values(incident_id=incident_id)
        )
        await session.execute(
            update(AlertOccurrenceRow)
            .where(AlertOccurrenceRow.first_event_id == cause_id)
            .where(AlertOccurrenceRow.incident_id.is_(None))
            .values(incident_id=incident_id)
        )

    # -- the incident projection ----------------------------------------------------------

    async def _project(self, session: AsyncSession, event: Event) -> None:
        assert event.incident_id
        row = await session.get(IncidentRow, event.incident_id, with_for_update=True)
        now = self._now()
        if row is None:
            if not isinstance(event, SeverityAssigned):
                return  # kept on the timeline; replayed when the incident's opening arrives
            row = projection.open_incident(event, now)
            session.add(row)
            # Events of this incident that arrived before its opening (other streams).
            earlier = await session.scalars(
                select(EventRow)
                .where(EventRow.incident_id == event.incident_id)
                .where(EventRow.event_id != event.event_id)
                .order_by(EventRow.occurred_at, EventRow.recorded_at)
            )
            for stored in earlier.all():
                replayed = _parse(stored.payload)
                if replayed is not None:
                    projection.apply(row, replayed)
        elif projection.apply(row, event):
            row.updated_at = now
        else:
            return
        await self._sync_services(session, row)
        if isinstance(event, IncidentResolved):
            # A fingerprint firing again after resolution is a new story: start new runs.
            await session.execute(
                update(AlertOccurrenceRow)
                .where(
                    or_(
                        AlertOccurrenceRow.incident_id == row.id,
                        AlertOccurrenceRow.scope == row.id,
                    )
                )
                .values(is_current=False)
            )

    async def _sync_services(self, session: AsyncSession, row: IncidentRow) -> None:
        for service in row.services or []:
            await session.execute(
                self._insert(IncidentServiceRow)
                .values(incident_id=row.id, service=service)
                .on_conflict_do_nothing(index_elements=["incident_id", "service"])
            )


RunKey = tuple[str, str, str]  # kind, scope, fingerprint


def _run_key(event: AlertRaised | AlertCorrelated) -> RunKey:
    return (event.event_type, _scope(event), event.fingerprint)


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    return [values[i : i + size] for i in range(0, len(values), size)] if values else []


@dataclass
class _BatchView:
    """What a batch needs to know of the tables, read up front in a few queries rather
    than several per event: ids already stored, the incident of events triage already
    reacted to, and the current run of each fingerprint (locked until commit)."""

    seen: set[str]
    reactions: dict[str, str]
    runs: dict[RunKey, AlertOccurrenceRow]

    def current_run(self, key: RunKey) -> AlertOccurrenceRow | None:
        run = self.runs.get(key)
        # An incident's resolution in this batch may have closed it (a bulk UPDATE, which
        # the session applies to the loaded row too).
        return run if run is not None and run.is_current else None

    @classmethod
    async def load(cls, session: AsyncSession, events: list[Event]) -> _BatchView:
        ids = list(dict.fromkeys(e.event_id for e in events))
        seen: set[str] = set()
        reactions: dict[str, str] = {}
        for chunk in _chunks(ids):
            seen.update(
                await session.scalars(select(EventRow.event_id).where(EventRow.event_id.in_(chunk)))
            )
            seen.update(
                await session.scalars(
                    select(ProcessedEventRow.event_id).where(ProcessedEventRow.event_id.in_(chunk))
                )
            )
            found = await session.execute(
                select(EventRow.causation_id, EventRow.incident_id)
                .where(EventRow.causation_id.in_(chunk))
                .where(EventRow.incident_id.is_not(None))
            )
            for cause, incident in found.all():
                if cause and incident:
                    reactions.setdefault(cause, incident)
        fingerprints = sorted(
            {e.fingerprint for e in events if isinstance(e, AlertRaised | AlertCorrelated)}
        )
        runs: dict[RunKey, AlertOccurrenceRow] = {}
        for chunk in _chunks(fingerprints):
            rows = await session.scalars(
                select(AlertOccurrenceRow)
                .where(AlertOccurrenceRow.fingerprint.in_(chunk))
                .where(AlertOccurrenceRow.is_current.is_(True))
                .with_for_update()
            )
            for row in rows:
                runs[(row.kind, row.scope, row.fingerprint)] = row
        return cls(seen, reactions, runs)


def _scope(event: AlertRaised | AlertCorrelated) -> str:
    if isinstance(event, AlertCorrelated):
        return event.incident_id or ""
    return ""


def _action_id(event: Event) -> str | None:
    if isinstance(event, ActionRequested | ActionCompleted | ActionApproved):
        return event.action_id[:64]
    return None


def _parse(payload: dict[str, Any]) -> Event | None:
    cls = EVENT_TYPES.get(str(payload.get("event_type")))
    return cls.model_validate(payload) if cls else None
