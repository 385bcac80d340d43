"""The recorder's batch path: one transaction per batch, same outcomes as event by event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from services.recorder.db import migrate
from services.recorder.models import AlertOccurrenceRow, EventRow
from services.recorder.store import Outcome, TimelineStore
from shared.events import AlertRaised, AlertStatus

pytestmark = pytest.mark.integration


async def test_a_batch_dedups_counts_and_splits_runs_inside_itself(database_url: str) -> None:
    store = TimelineStore(database_url)
    await migrate(store.engine)
    try:
        first = AlertRaised(service="backend", check="health")
        t0 = first.occurred_at
        repeats = [
            AlertRaised(service="backend", check="health", occurred_at=t0 + timedelta(seconds=i))
            for i in range(1, 4)
        ]
        recovery = AlertRaised(
            service="backend",
            check="health",
            status=AlertStatus.RESOLVED,
            occurred_at=t0 + timedelta(seconds=10),
        )
        other = AlertRaised(service="ollama", check="models")
        batch = [first, *repeats, first, recovery, other]  # `first` again: a redelivery
        outcomes = await store.record_many(batch)
        assert outcomes == [
            Outcome.STORED,
            Outcome.COUNTED,
            Outcome.COUNTED,
            Outcome.COUNTED,
            Outcome.DUPLICATE,
            Outcome.STORED,
            Outcome.STORED,
        ]
        # The same batch delivered again changes nothing.
        assert set(await store.record_many(batch)) == {Outcome.DUPLICATE}
        async with store.sessions() as session:
            runs = (
                await session.scalars(
                    select(AlertOccurrenceRow)
                    .where(AlertOccurrenceRow.fingerprint == first.fingerprint)
                    .order_by(AlertOccurrenceRow.id)
                )
            ).all()
            stored = set(await session.scalars(select(EventRow.event_id)))
        assert [(r.status, r.count, r.is_current) for r in runs] == [
            ("firing", 4, False),
            ("resolved", 1, True),
        ]
        assert runs[0].last_event_id == repeats[-1].event_id
        assert stored == {first.event_id, recovery.event_id, other.event_id}
    finally:
        await store.close()
