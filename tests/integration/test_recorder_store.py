"""The recorder's store on SQLite and PostgreSQL: migrations, idempotence, storms, projection."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.sql.elements import BindParameter

from services.recorder.db import current_revision, head_revision, migrate
from services.recorder.models import AlertOccurrenceRow, Base, EventRow, ProcessedEventRow
from services.recorder.queries import IncidentFilter, Reader
from services.recorder.store import Outcome, TimelineStore
from shared.events import Event, RoleAssigned, SeverityAssigned
from tests.recorder_events import acked, alert, assigned, at, correlated, new_id, resolved

pytestmark = pytest.mark.integration


class _WithRootCause(SeverityAssigned):
    root_cause: str | None = None


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[TimelineStore]:
    store = TimelineStore(database_url)
    await migrate(store.engine)
    yield store
    await store.close()


async def _count(store: TimelineStore, model: type[Base]) -> int:
    async with store.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_migrations_run_up_from_an_empty_database_and_match_the_models(
    database_url: str,
) -> None:
    store = TimelineStore(database_url)
    try:
        assert await current_revision(store.engine) is None
        await migrate(store.engine)
        await migrate(store.engine)  # a second start changes nothing
        assert await current_revision(store.engine) == head_revision() == "0004"
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
            )
        assert tables >= {"events", "incidents", "alert_occurrences", "processed_events"}
        assert diff == []
    finally:
        await store.close()


async def test_redelivered_events_are_stored_once(store: TimelineStore) -> None:
    incident = new_id()
    first = alert()
    events = [first, assigned(first, incident), acked(incident), resolved(incident)]
    assert [await store.record(e) for e in events] == [Outcome.STORED] * 4
    assert [await store.record(e) for e in events] == [Outcome.DUPLICATE] * 4
    assert await _count(store, EventRow) == 4
    detail = await Reader(store.sessions).get_incident(incident)
    assert detail is not None
    assert detail.status == "resolved"


async def test_an_alert_storm_is_one_row_and_a_counter_even_under_redelivery(
    store: TimelineStore,
) -> None:
    incident = new_id()
    first = alert(minute=0)
    repeats = [alert(fingerprint=first.fingerprint, minute=i / 100) for i in range(1, 400)]
    await store.record(first)
    await store.record(assigned(first, incident))
    for repeat in repeats:
        assert await store.record(repeat) is Outcome.COUNTED
        await store.record(correlated(repeat, incident, minute=repeat.occurred_at.minute + 1))
    for repeat in repeats[:50]:  # redelivery
        assert await store.record(repeat) is Outcome.DUPLICATE
    # Timeline: the first alert, SeverityAssigned, the first correlation.
    assert await _count(store, EventRow) == 3
    runs = await Reader(store.sessions).occurrences(incident)
    assert [(r.count, r.status, r.first_event_id) for r in runs] == [
        (400, "firing", first.event_id)
    ]
    assert runs[0].last_event_id == repeats[-1].event_id
    timeline = await Reader(store.sessions).timeline(incident)
    heads = [t for t in timeline if t.occurrence]
    assert next(t.row.event_id for t in heads) == first.event_id
    assert heads[0].occurrence is not None
    assert heads[0].occurrence.count == 400


async def test_a_status_change_starts_a_new_run_on_the_timeline(store: TimelineStore) -> None:
    incident = new_id()
    first = alert()
    await store.record(first)
    await store.record(assigned(first, incident))
    for minute in (1, 2):
        await store.record(alert(fingerprint=first.fingerprint, minute=minute))
    recovery = alert(fingerprint=first.fingerprint, status="resolved", minute=3)
    assert await store.record(recovery) is Outcome.STORED
    assert await store.record(correlated(recovery, incident, minute=3)) is Outcome.STORED
    runs = await Reader(store.sessions).occurrences(incident)
    assert [(r.status, r.count) for r in runs] == [("firing", 3), ("resolved", 1)]
    row = await Reader(store.sessions).get_incident(incident)
    assert row is not None
    assert row.status == "mitigated"


async def test_alert_and_triage_reaction_are_linked_in_either_order(store: TimelineStore) -> None:
    reader = Reader(store.sessions)
    for alert_first in (True, False):
        incident = new_id()
        cause = alert()
        events = [cause, assigned(cause, incident)]
        for event in events if alert_first else reversed(events):
            await store.record(event)
        timeline = [t.row for t in await reader.timeline(incident)]
        assert [r.event_type for r in timeline] == ["AlertRaised", "SeverityAssigned"]
        assert timeline[1].causation_id == cause.event_id
        runs = await reader.occurrences(incident)
        assert [r.first_event_id for r in runs] == [cause.event_id]


async def test_events_before_the_opening_are_replayed_into_the_projection(
    store: TimelineStore,
) -> None:
    incident = new_id()
    cause = alert()
    await store.record(acked(incident, minute=5, by="alice"))
    await store.record(RoleAssigned(incident_id=incident, role="incident_commander", person="ann"))
    await store.record(cause)
    base = assigned(cause, incident, "P2").model_dump()
    await store.record(_WithRootCause.model_validate({**base, "root_cause": "disk full"}))
    row = await Reader(store.sessions).get_incident(incident)
    assert row is not None
    assert (row.status, row.severity, row.root_cause) == ("acknowledged", "P2", "disk full")
    assert row.incident_commander == "ann"
    assert row.acknowledged_at is not None


async def test_filters_pagination_and_services_involved(store: TimelineStore) -> None:
    reader = Reader(store.sessions)
    ids = []
    for n, (service, severity) in enumerate(
        [("backend", "P1"), ("ollama", "P2"), ("backend", "P3")]
    ):
        incident = new_id()
        ids.append(incident)
        cause = alert(service, minute=n)
        await store.record(cause)
        event = assigned(cause, incident, severity, minute=n)
        await store.record(event.model_copy(update={"opened_at": at(n)}))
    other = alert("sutazai-postgres")
    await store.record(correlated(other, ids[1]))
    await store.record(acked(ids[0]))
    page, total = await reader.list_incidents(IncidentFilter(service="backend"), limit=1)
    assert total == 2
    assert [r.id for r in page] == [ids[2]]
    page, _ = await reader.list_incidents(IncidentFilter(service="backend"), limit=1, offset=1)
    assert [r.id for r in page] == [ids[0]]
    page, total = await reader.list_incidents(IncidentFilter(service="sutazai-postgres"))
    assert [r.id for r in page] == [ids[1]]
    page, _ = await reader.list_incidents(IncidentFilter(status="acknowledged"))
    assert [r.id for r in page] == [ids[0]]
    page, _ = await reader.list_incidents(IncidentFilter(severity="P2", since=at(1)))
    assert [r.id for r in page] == [ids[1]]
    page, total = await reader.list_incidents(IncidentFilter(since=at(3)))
    assert (page, total) == ([], 0)
    assert await reader.incidents_per_service(None) == {
        "backend": 2,
        "ollama": 1,
        "sutazai-postgres": 1,
    }


async def test_a_refire_after_resolution_starts_a_new_run_for_the_new_incident(
    store: TimelineStore,
) -> None:
    reader = Reader(store.sessions)
    old, new = new_id(), new_id()
    first = alert()
    await store.record(first)
    await store.record(assigned(first, old))
    await store.record(resolved(old, minute=10))
    again = alert(fingerprint=first.fingerprint, minute=20)
    assert await store.record(again) is Outcome.STORED
    await store.record(assigned(again, new, minute=20))
    assert [r.first_event_id for r in await reader.occurrences(new)] == [again.event_id]
    assert [r.count for r in await reader.occurrences(old)] == [1]


async def test_resolution_closes_the_incidents_runs_it_did_not_read(store: TimelineStore) -> None:
    """Closing an incident's runs stored before the resolution's batch: the raw alert runs
    linked to it and its correlation runs (scope = incident), by the incident index alone
    (issue 16 dropped the second statement, by scope)."""
    incident = new_id()
    first, second = alert(), alert("db")
    await store.record_many([first, assigned(first, incident), second])
    await store.record(correlated(second, incident))
    async with store.sessions() as session:
        current = select(func.count()).where(AlertOccurrenceRow.is_current.is_(True))
        assert (await session.scalar(current)) == 3  # two raw runs, one correlation run
    await store.record(resolved(incident))
    async with store.sessions() as session:
        assert (await session.scalar(current)) == 0
    again = alert("db", fingerprint=second.fingerprint, minute=70)
    assert await store.record(again) is Outcome.STORED  # a new story, not a repeat


async def test_expired_dedup_ids_are_pruned(store: TimelineStore) -> None:
    first = alert()
    await store.record(first)
    await store.record(alert(fingerprint=first.fingerprint))
    assert await _count(store, ProcessedEventRow) == 1
    assert await store.prune_processed(timedelta(hours=1)) == 0
    assert await store.prune_processed(timedelta(seconds=-1)) == 1
    assert await _count(store, ProcessedEventRow) == 0
    assert await _count(store, AlertOccurrenceRow) == 1


async def test_concurrent_deliveries_from_different_streams_still_link_and_project(
    store: TimelineStore,
) -> None:
    """Alerts, triage's reactions and acknowledgements handled at the same time."""
    reader = Reader(store.sessions)
    cases = []
    for _ in range(12):
        incident, cause = new_id(), alert()
        cases.append((incident, cause, [cause, assigned(cause, incident), acked(incident)]))
    events = [e for _, _, evs in cases for e in evs]
    random.Random(7).shuffle(events)
    outcomes = await asyncio.gather(*(store.record(e) for e in events))
    assert set(outcomes) == {Outcome.STORED}
    for incident, cause, _ in cases:
        row = await reader.get_incident(incident)
        assert row is not None
        assert row.status == "acknowledged"
        assert [r.first_event_id for r in await reader.occurrences(incident)] == [cause.event_id]
        assert len(await reader.timeline(incident)) == 3


_PARTIAL_INDEXES = {
    "ix_events_incident": "SELECT event_id FROM events WHERE incident_id = :v ORDER BY occurred_at",
    "ix_events_causation": "SELECT causation_id, incident_id FROM events "
    "WHERE causation_id IN (:v, :w) AND incident_id IS NOT NULL",
    "ix_events_action": "SELECT event_id FROM events WHERE action_id = :v",
    "ix_events_silence": "SELECT event_id FROM events WHERE silence_id = :v",
    "ix_alert_occurrences_incident": "SELECT id FROM alert_occurrences "
    "WHERE incident_id IN (:v, :w) AND is_current",
}
# Current runs by fingerprint (a batch's runs): one index of these random keys.
_CURRENT_RUNS = {
    "ux_alert_occurrences_current": "SELECT id FROM alert_occurrences "
    "WHERE alert_occurrences.is_current AND fingerprint IN (:v, :w)",
}


async def test_mostly_null_columns_have_partial_indexes_the_queries_use(
    database_url: str,
) -> None:
    """Issue 16 (write amplification): an alert row no longer writes an entry into the
    indexes of its NULL causation, action, silence and incident, a new run writes one
    index keyed by its random fingerprint instead of two (migration 0004), and the
    recorder's queries of those columns are still served by them."""
    store = TimelineStore(database_url)
    try:
        await migrate(store.engine)
        async with store.engine.connect() as conn:
            sqlite = store.engine.dialect.name == "sqlite"
            if not sqlite:
                await conn.exec_driver_sql("SET enable_seqscan = off")  # empty tables
            for name, query in {**_PARTIAL_INDEXES, **_CURRENT_RUNS}.items():
                if sqlite:
                    found = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"
                    plan_of = f"EXPLAIN QUERY PLAN {query}"
                else:
                    found = "SELECT indexdef FROM pg_indexes WHERE indexname = :n"
                    plan_of = f"EXPLAIN {query}"
                definition = (await conn.execute(text(found), {"n": name})).scalar_one()
                condition = "is_current" if name in _CURRENT_RUNS else "IS NOT NULL"
                assert condition in definition, definition
                plan = " ".join(
                    str(row[-1]) for row in await conn.execute(text(plan_of), {"v": "a", "w": "b"})
                )
                assert name in plan, (name, plan)
            names = "SELECT name FROM sqlite_master WHERE tbl_name = :t AND type = 'index'"
            if not sqlite:
                names = "SELECT indexname FROM pg_indexes WHERE tablename = :t"
            runs = set((await conn.execute(text(names), {"t": "alert_occurrences"})).scalars())
            assert "ix_alert_occurrences_current_fingerprint" not in runs  # the second one
    finally:
        await store.close()


async def test_rows_written_in_bulk_read_back_as_the_orm_writes_them(store: TimelineStore) -> None:
    # The write path hands rows to the driver itself: on SQLite its timestamps must be the
    # text SQLAlchemy writes (the queries compare them as text), and the payload the event.
    first = alert("svc")
    repeat = alert("svc", fingerprint=first.fingerprint, minute=2)
    incident = new_id()
    await store.record_many([first, repeat, assigned(first, incident)])
    as_text = "SELECT CAST({} AS TEXT) FROM {} WHERE {} = :key"
    async with store.engine.connect() as conn:

        async def raw(column: str, table: str, where: str, key: str) -> str:
            found = await conn.execute(text(as_text.format(column, table, where)), {"key": key})
            return str(found.scalar_one())

        opened = await raw("opened_at", "incidents", "id", incident)  # written by the ORM
        assert await raw("occurred_at", "events", "event_id", first.event_id) == opened
        assert await raw("first_at", "alert_occurrences", "first_event_id", first.event_id) == (
            opened
        )
    async with store.sessions() as session:
        row = await session.get(EventRow, first.event_id)
        assert row is not None
        assert row.payload == first.model_dump(mode="json")
        run = await session.scalar(select(AlertOccurrenceRow))
        assert run is not None
        assert (run.count, run.last_event_id, run.incident_id) == (2, repeat.event_id, incident)
        assert run.is_current is True


async def test_a_batch_leaves_no_statement_parameters_for_the_cycle_collector(
    store: TimelineStore,
) -> None:
    """The keys a batch looks up are parameters of conditions made once (issue 16): a
    condition made per batch left SQLAlchemy parameters in reference cycles, most of the
    recorder's cyclic garbage, which its collections found (and paused for) every second."""

    def batch() -> list[Event]:
        cause, other, incident = alert(), alert("db"), new_id()
        # (A resolution's closing of runs still builds its UPDATE per batch: rare.)
        return [cause, assigned(cause, incident), correlated(other, incident), acked(incident)]

    await store.record_many(batch())  # the first batch makes the statements
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        outcomes = await store.record_many(batch())
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, BindParameter)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert outcomes == [Outcome.STORED] * 4
    assert left == []
