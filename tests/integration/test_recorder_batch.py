"""The recorder's batch path: one transaction per batch, same outcomes as event by event."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event, select
from sqlalchemy.exc import DBAPIError

from services.recorder.db import as_utc, migrate
from services.recorder.models import (
    AlertOccurrenceRow,
    EventRow,
    IncidentRow,
    IncidentServiceRow,
    ProcessedEventRow,
)
from services.recorder.queries import Reader
from services.recorder.store import Outcome, TimelineStore
from shared.events import (
    ActionRequested,
    AlertCorrelated,
    AlertRaised,
    AlertStatus,
    Event,
    RoleAssigned,
    SeverityAssigned,
)
from tests.recorder_events import acked, alert, assigned, at, correlated, new_id, resolved

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


def _story() -> list[Event]:
    """Several incidents interleaved as the streams deliver them: reactions before and
    after their alerts, a storm with its correlations, redeliveries, events of an incident
    before its opening, a resolution followed by a refire, and a link to an alert that
    only a reaction ties to its incident."""
    x, y, z = new_id(), new_id(), new_id()
    a1 = alert("backend", minute=0)
    storm = [alert(fingerprint=a1.fingerprint, minute=0.1 * i) for i in range(1, 5)]
    a2 = alert("ollama", minute=1)
    a3 = alert("redis", minute=2)
    lonely = alert("grafana", minute=3)  # tied to z only by an ActionRequested
    refire = alert(fingerprint=a1.fingerprint, minute=70)
    recovery = alert(fingerprint=a2.fingerprint, status="resolved", minute=20)
    base = assigned(a3, z, "P2", minute=2.5).model_dump()
    return [
        a1,
        assigned(a1, x, "P1"),
        *storm,
        *(correlated(s, x, minute=s.occurred_at.minute + 0.5) for s in storm),
        a1,  # redelivered
        correlated(a2, x, minute=1.5),  # before its alert
        a2,
        acked(z, minute=3, by="bob"),  # before z opens
        RoleAssigned(incident_id=z, role="technical_lead", person="tess", occurred_at=at(3)),
        lonely,
        ActionRequested(
            incident_id=z, causation_id=lonely.event_id, action="docker.restart", target="r"
        ),
        a3,
        SeverityAssigned.model_validate({**base, "root_cause": "redis", "services": ["redis"]}),
        assigned(a3, z, "P0", previous="P2", minute=4),
        recovery,
        correlated(recovery, x, minute=20.5),
        acked(x, minute=25),
        resolved(x, minute=60),
        refire,
        assigned(refire, y, "P3", minute=70.5),
        correlated(refire, y, minute=70.6),
        storm[0],  # redelivered repeat
    ]


async def _snapshot(store: TimelineStore) -> dict[str, Any]:
    """Every table, without the columns that tell when the recorder wrote (wall clock)."""
    out: dict[str, Any] = {}
    async with store.sessions() as session:
        for model, skip in (
            (EventRow, {"recorded_at"}),
            (AlertOccurrenceRow, {"id"}),
            (IncidentRow, {"updated_at"}),
            (IncidentServiceRow, set()),
            (ProcessedEventRow, {"processed_at"}),
        ):
            columns = [c.key for c in model.__table__.columns if c.key not in skip]
            rows = [
                {key: _plain(getattr(row, key)) for key in columns}
                for row in (await session.scalars(select(model))).all()
            ]
            out[model.__tablename__] = sorted(rows, key=repr)
    return out


def _plain(value: Any) -> Any:
    return as_utc(value) if isinstance(value, datetime) else value


async def _wipe(store: TimelineStore) -> None:
    async with store.sessions.begin() as session:
        for model in (EventRow, AlertOccurrenceRow, IncidentRow, IncidentServiceRow):
            await session.execute(delete(model))
        await session.execute(delete(ProcessedEventRow))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
async def test_batches_end_as_the_same_events_one_by_one(database_url: str, seed: int) -> None:
    """Whatever the batches (sizes, mixes of incidents, an alert with its reaction, the
    same event twice), the tables end exactly as when each event is recorded alone."""
    store = TimelineStore(database_url)
    await migrate(store.engine)
    try:
        events = _story()
        rng = random.Random(seed)
        if seed:  # the streams interleave in any order
            rng.shuffle(events)
        singles = [await store.record(event) for event in events]
        expected = await _snapshot(store)
        await _wipe(store)
        batched: list[Outcome] = []
        start = 0
        while start < len(events):
            size = len(events) if seed == 0 else rng.randint(1, 12)
            batched += await store.record_many(events[start : start + size])
            start += size
        assert batched == singles
        assert await _snapshot(store) == expected
        assert Outcome.COUNTED in singles
        assert Outcome.DUPLICATE in singles
    finally:
        await store.close()


async def test_a_batch_links_an_alert_and_its_reaction_and_opens_several_incidents(
    database_url: str,
) -> None:
    store = TimelineStore(database_url)
    await migrate(store.engine)
    try:
        incidents = [new_id() for _ in range(3)]
        causes = [alert(f"svc{i}") for i in range(6)]
        reactions = [
            assigned(c, incidents[i], "P2") if i < 3 else correlated(c, incidents[i % 3])
            for i, c in enumerate(causes)
        ]
        # Reactions first for half of them: the link is made whichever comes first.
        batch = [*reactions[::2], *causes, *reactions[1::2], causes[0]]
        outcomes = await store.record_many(batch)
        assert outcomes == [Outcome.STORED] * 12 + [Outcome.DUPLICATE]
        reader = Reader(store.sessions)
        for n, incident in enumerate(incidents):
            row = await reader.get_incident(incident)
            assert row is not None
            assert row.services == [f"svc{n}", f"svc{n + 3}"]
            timeline = [t.row for t in await reader.timeline(incident)]
            assert {r.event_id for r in timeline if r.event_type == "AlertRaised"} == {
                causes[n].event_id,
                causes[n + 3].event_id,
            }
            runs = await reader.occurrences(incident)
            assert {r.first_event_id for r in runs if r.kind == "AlertRaised"} == {
                causes[n].event_id,
                causes[n + 3].event_id,
            }
    finally:
        await store.close()


async def _stored(store: TimelineStore, ids: set[str]) -> set[str]:
    async with store.sessions() as session:
        found = await session.scalars(select(EventRow.event_id).where(EventRow.event_id.in_(ids)))
        return set(found)


async def _commits(store: TimelineStore) -> list[int]:
    """A counter of the transactions the store commits."""
    count = [0]

    def on_commit(_conn: Any) -> None:
        count[0] += 1

    event.listen(store.engine.sync_engine, "commit", on_commit)
    return count


async def test_batches_arriving_during_a_transaction_are_committed_together(
    database_url: str,
) -> None:
    # The recorder's three stream consumers hand in batches concurrently: those waiting
    # while a transaction runs share the next one, and each gets its own outcomes.
    store = TimelineStore(database_url)
    await migrate(store.engine)
    try:
        commits = await _commits(store)
        batches = [
            [AlertRaised(service=f"svc-{i}", check=f"c{j}") for j in range(5)] for i in range(6)
        ]
        again = batches[0][:2]  # a redelivery, handed in with the rest
        results = await asyncio.gather(*(store.record_many(b) for b in [*batches, again]))
        assert results[:6] == [[Outcome.STORED] * 5] * 6
        assert results[6] == [Outcome.DUPLICATE] * 2
        assert 1 <= commits[0] < 7  # the first alone, the others grouped behind it
        ids = {a.event_id for batch in batches for a in batch}
        assert await _stored(store, ids) == ids
    finally:
        await store.close()


async def test_a_failing_batch_does_not_fail_the_batches_grouped_with_it(
    postgres_database_url: str,
) -> None:
    # PostgreSQL refuses an incident id longer than its column; the other batches of the
    # group are then stored on their own.
    store = TimelineStore(postgres_database_url)
    await migrate(store.engine)
    try:
        good = [[AlertRaised(service=f"svc-{i}", check="c")] for i in range(3)]
        bad = [
            AlertCorrelated(
                incident_id="x" * 64, fingerprint="fp", service="svc", status=AlertStatus.FIRING
            )
        ]
        results = await asyncio.gather(
            *(store.record_many(b) for b in [good[0], bad, *good[1:]]), return_exceptions=True
        )
        assert isinstance(results[1], DBAPIError)
        assert [results[0], results[2], results[3]] == [[Outcome.STORED]] * 3
        ids = {batch[0].event_id for batch in good}
        assert await _stored(store, ids | {bad[0].event_id}) == ids
    finally:
        await store.close()


async def test_the_write_path_reads_a_young_postgres_table_by_index_only(
    postgres_database_url: str,
) -> None:
    # No ANALYZE has run yet on a fresh database: PostgreSQL would guess that `= ANY` of a
    # few hundred keys of a non-unique column (fingerprint, causation, first event) matches
    # most rows and scan the whole table for every batch. Each lookup the write path sent
    # must plan as an index scan in its transaction, and the setting must not outlive it.
    store = TimelineStore(postgres_database_url)
    await migrate(store.engine)
    lookups: list[tuple[str, Any]] = []

    def grab(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and not many:
            lookups.append((statement, params))

    try:
        alerts = [alert(f"svc-{i % 20}") for i in range(2_000)]
        await store.record_many(alerts)
        incident = new_id()
        batch: list[Event] = [assigned(alerts[0], incident)]
        batch += [correlated(a, incident) for a in alerts[:300]]
        event.listen(store.engine.sync_engine, "before_cursor_execute", grab)
        await store.record_many(batch)
        event.remove(store.engine.sync_engine, "before_cursor_execute", grab)
        plans = []
        async with store.sessions.begin() as session:
            await store._serialize(session, batch)
            conn = await session.connection()
            for statement, params in lookups[1:]:  # the first takes the locks
                found = await conn.exec_driver_sql(f"EXPLAIN {statement}", params)
                plans.append("\n".join(row[0] for row in found))
        assert len(plans) >= 4  # seen ids, reactions, current runs, incidents
        assert not [plan for plan in plans if "Seq Scan" in plan]
        assert any("ux_alert_occurrences_current" in plan for plan in plans)
        async with store.engine.connect() as conn:
            assert (await conn.exec_driver_sql("SHOW enable_seqscan")).scalar() == "on"
    finally:
        await store.close()


async def test_a_batch_raced_by_another_writer_is_decided_again(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer (a replica) stores the batch's alert between the batch's reads and its
    # writes: the insert skips it, the count of rows inserted tells, and the batch is
    # decided again on fresh reads, where the alert is a duplicate (one run, not two).
    from services.recorder import store as module

    mine, other = TimelineStore(database_url), TimelineStore(database_url)
    await migrate(mine.engine)
    first = alert("svc")
    loads = 0
    load = module._BatchView.load

    async def load_then_race(session: Any, events: list[Event], pg: bool) -> Any:
        nonlocal loads
        loads += 1
        view = await load(session, events, pg)
        if loads == 1:
            assert await other.record_many([first]) == [Outcome.STORED]
        return view

    async def no_locks(_session: Any, _events: list[Event]) -> None:
        return None  # PostgreSQL's advisory locks would make the other writer wait

    try:
        monkeypatch.setattr(module._BatchView, "load", load_then_race)
        monkeypatch.setattr(mine, "_serialize", no_locks)
        assert await mine.record_many([first]) == [Outcome.DUPLICATE]
        assert loads == 3  # mine, the other's, mine again
        async with mine.sessions() as session:
            runs = (await session.scalars(select(AlertOccurrenceRow))).all()
        assert [(run.first_event_id, run.count) for run in runs] == [(first.event_id, 1)]
    finally:
        await mine.close()
        await other.close()


async def test_a_reaction_to_an_earlier_alert_updates_its_run_once(database_url: str) -> None:
    # The alert's run is read with the batch (its fingerprint) and linked in memory: one
    # UPDATE of alert_occurrences writes it, not a link UPDATE and then the run's changes
    # (a second row version of the run per alert on PostgreSQL).
    store = TimelineStore(database_url)
    await migrate(store.engine)
    statements: list[str] = []

    def grab(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, _many: bool) -> None:
        statements.append(" ".join(statement.split()))

    try:
        first = alert("svc")
        await store.record_many([first])
        incident = new_id()
        event.listen(store.engine.sync_engine, "before_cursor_execute", grab)
        await store.record_many([assigned(first, incident)])
        event.remove(store.engine.sync_engine, "before_cursor_execute", grab)
        updates = [s for s in statements if s.upper().startswith("UPDATE ALERT_OCCURRENCES")]
        assert len(updates) == 1
        async with store.sessions() as session:
            run = await session.scalar(select(AlertOccurrenceRow))
            linked = await session.get(EventRow, first.event_id)
        assert run is not None
        assert run.incident_id == incident
        assert linked is not None
        assert linked.incident_id == incident
    finally:
        await store.close()


@pytest.mark.parametrize("reaction", ["assigned", "correlated"])
@pytest.mark.parametrize(
    "order", ["A-B-R", "AB-R", "A-BR", "ABR", "A-R-B", "AR-B", "A-RB", "R-A-B", "RA-B", "RAB"]
)
async def test_a_reaction_to_the_copy_only_counted_puts_the_stored_copy_in_the_incident(
    database_url: str, reaction: str, order: str
) -> None:
    """One alert posted to two detectors is two events of one fingerprint: the recorder
    stores the first it sees (A) and counts the other (B) into A's run, while the triage
    replica that wins may be the one that had B. Its reaction names B: the raw alert must
    still reach the incident's timeline, whatever order the streams deliver them in.
    (`order`: the events in the order recorded, "-" between batches.)"""
    store = TimelineStore(database_url)
    await migrate(store.engine)
    try:
        copy_a = alert("svc", fingerprint="ext:am:am:same-alert")
        copy_b = AlertRaised.model_validate(
            {
                **copy_a.model_dump(),
                "event_id": new_id(),
                "occurred_at": copy_a.occurred_at + timedelta(milliseconds=3),
            }
        )
        incident = new_id()
        opening: list[Event] = []
        if reaction == "correlated":  # B joins an incident that another alert opened
            other = alert("svc")
            opening = [other, assigned(other, incident, "P2")]
            await store.record_many(opening)
        react = (
            assigned(copy_b, incident, "P2")
            if reaction == "assigned"
            else correlated(copy_b, incident)
        )
        named = {"A": copy_a, "B": copy_b, "R": react}
        for part in order.split("-"):
            await store.record_many([named[c] for c in part])
        reader = Reader(store.sessions)
        timeline = [t.row for t in await reader.timeline(incident)]
        raw = [r.event_id for r in timeline if r.event_type == "AlertRaised"]
        assert copy_a.event_id in raw  # the copy the recorder stored: on the timeline
        assert copy_b.event_id not in raw  # the other was only counted
        runs = [r for r in await reader.occurrences(incident) if r.kind == "AlertRaised"]
        mine = [r for r in runs if r.fingerprint == copy_a.fingerprint]
        assert [(r.first_event_id, r.count) for r in mine] == [(copy_a.event_id, 2)]
    finally:
        await store.close()
