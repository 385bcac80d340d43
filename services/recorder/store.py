"""The recorder's write path: every event once, alert storms counted, incidents projected.

`record_many` handles a batch in one transaction, in three steps:

1. read what the batch needs in a few queries (`_BatchView`): ids already stored, the
   incident of events triage already reacted to, the current runs of the batch's alerts
   and the incidents it touches (locked until commit);
2. decide every event in order, in memory (`_Batch`), exactly as if they came one by one:
   - a redelivered event is recognised (timeline row or dedup ledger) and changes nothing;
   - an alert that repeats the current run of its fingerprint in the same status is only
     counted (`alert_occurrences`), everything else becomes a timeline row;
   - an alert and the triage event that reacts to it (causation_id) are linked to the
     incident whichever arrives first;
   - the incident projection is updated (`projection.py` decides how);
3. write the outcome with a few statements per table (`TimelineStore._write`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    String,
    Table,
    Text,
    any_,
    bindparam,
    delete,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

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
    ActionRefused,
    ActionRequested,
    AlertCorrelated,
    AlertRaised,
    AlertSilenced,
    Event,
    IncidentResolved,
    SeverityAssigned,
    SilenceCreated,
    SilenceExpired,
    utcnow,
)

__all__ = ["Outcome", "TimelineStore"]

log = logging.getLogger(__name__)

_EVENTS = cast(Table, EventRow.__table__)
_RUNS = cast(Table, AlertOccurrenceRow.__table__)
_PROCESSED = cast(Table, ProcessedEventRow.__table__)
_SERVICES = cast(Table, IncidentServiceRow.__table__)
# The condition of the partial index of current runs, spelled as the index spells it:
# SQLite uses a partial index only for that very term (not `is_current = 1`).
_CURRENT = text("alert_occurrences.is_current")
# A batch's writes raced a writer outside this process (another replica on SQLite):
# the transaction is rolled back and the batch decided again on fresh reads.
_ATTEMPTS = 5


class Outcome(enum.StrEnum):
    STORED = "stored"  # a new timeline row
    COUNTED = "counted"  # a repeat of an alert run
    DUPLICATE = "duplicate"  # seen before: nothing changed


class _Raced(Exception):
    """Another transaction stored some of the batch's events first."""


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
        self._pg = self.engine.dialect.name == "postgresql"
        dialect = self.engine.dialect
        self._bulk = {
            "events": _Bulk(_EVENTS, [c.name for c in _EVENTS.c], dialect),
            "processed": _Bulk(_PROCESSED, ["event_id", "processed_at"], dialect),
            "link_events": _Bulk(_EVENTS, ["incident_id"], dialect, key="event_id"),
            "link_runs": _Bulk(_RUNS, ["incident_id"], dialect, key="first_event_id"),
            "runs": _Bulk(_RUNS, list(_COLUMNS), dialect),
            "runs_by_id": _Bulk(_RUNS, list(_COLUMNS), dialect, key="id"),
        }
        # One transaction at a time per process, batches waiting meanwhile grouped into the
        # next: SQLite has one writer anyway, and taking turns makes each transaction see
        # the ones before it whole (replicas on PostgreSQL also use advisory locks).
        self._turn = asyncio.Lock()
        self._waiting: list[tuple[list[Event], asyncio.Future[list[Outcome]]]] = []

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
        """Store a batch in one transaction: all of it, or (on error) none of it.

        Batches handed in while a transaction runs (from the other streams' consumers) are
        stored together in the next one, a group commit: under load the recorder pays one
        transaction where it would pay one per stream, and no batch waits behind another.
        """
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._waiting.append((events, future))
        async with self._turn:
            if not future.done():
                taken, self._waiting = self._waiting, []
                try:
                    await self._record_together(taken)
                except BaseException:
                    # Cancelled mid-transaction (shutdown): what is not stored goes back.
                    self._waiting[:0] = [t for t in taken if not t[1].done()]
                    raise
        return await future

    async def _record_together(
        self, taken: list[tuple[list[Event], asyncio.Future[list[Outcome]]]]
    ) -> None:
        try:
            outcomes = await self._record_now([e for events, _ in taken for e in events])
        except Exception as exc:
            if len(taken) == 1:
                taken[0][1].set_exception(exc)
                return
            # One batch's failure must not fail the others: each on its own, then.
            for events, future in taken:
                try:
                    future.set_result(await self._record_now(events))
                except Exception as own:
                    future.set_exception(own)
            return
        start = 0
        for events, future in taken:
            future.set_result(outcomes[start : start + len(events)])
            start += len(events)

    async def _record_now(self, events: list[Event]) -> list[Outcome]:
        for attempt in range(_ATTEMPTS):
            try:
                clock = _Stopwatch()
                async with self.sessions.begin() as session:
                    await self._serialize(session, events)
                    view = await _BatchView.load(session, events, self._pg)
                    batch = _Batch(view, self._now)
                    clock.lap("read")
                    outcomes = [batch.take(event) for event in events]
                    await self._write(session, batch)
                    clock.lap("write")
                clock.lap("commit")
                clock.report_if_slow(f"recording {len(events)} events")
                return outcomes
            except _Raced:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

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
        fingerprint lock it; events of one incident lock it. A batch takes all its locks
        up front, in one statement, in the order of their lock ids (PostgreSQL evaluates
        a volatile select list after ORDER BY), so transactions cannot deadlock on them.
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
            if isinstance(event, AlertRaised | AlertCorrelated | SeverityAssigned):
                keys.add(f"fp:{event.fingerprint}")  # (a reaction may link its raw run)
        # The same statement makes this transaction look rows up by index only
        # (`SET LOCAL enable_seqscan = off`): every query of the write path finds a batch's
        # keys, and has an index for it. Without statistics (a young table, before
        # autovacuum's first ANALYZE) the planner guesses that `= ANY` of a few hundred
        # keys of a non-unique column matches most rows, and scans the whole table for
        # every batch: bench.pipeline --postgres did, on alert_occurrences and events
        # (pg_stat_user_tables), at 500-800 alerts/s (issue 16).
        await session.execute(
            text(
                "SELECT set_config('enable_seqscan', 'off', true), pg_advisory_xact_lock(h) "
                "FROM (SELECT DISTINCT hashtext(k) AS h FROM unnest(CAST(:keys AS text[])) AS k)"
                " AS l ORDER BY h"
            ),
            {"keys": sorted(keys)},
        )

    async def _write(self, session: AsyncSession, batch: _Batch) -> None:
        """What `batch` decided, a few statements per table, in an order that keeps the
        result that of the events one by one (see `_Batch`). The rows go to the driver as
        they are (`_Bulk`), without SQLAlchemy's per-row parameter processing."""
        conn = await session.connection()
        bulk = self._bulk
        if batch.rows:
            stored = await bulk["events"].insert(conn, batch.rows.values(), "event_id")
            if stored != len(batch.rows):
                raise _Raced
        if batch.counted:
            counted = [{"event_id": event_id, "processed_at": at} for event_id, at in batch.counted]
            if await bulk["processed"].insert(conn, counted, "event_id") != len(batch.counted):
                raise _Raced
        if batch.links:
            # Alerts stored before this batch: the first reaction names their incident.
            first: dict[str, str] = {}
            for cause, incident in batch.links:
                first.setdefault(cause, incident)
            links = [{"key": cause, "incident_id": inc} for cause, inc in first.items()]
            await bulk["link_events"].update(conn, links, where_null="incident_id")
            # A run the batch read is linked in memory and written below with its other
            # changes: a second UPDATE of it here cost a second row version (and index
            # entries) per alert on PostgreSQL (n_tup_upd of alert_occurrences was twice
            # the alerts in bench.pipeline --postgres).
            linked = {run.first_event_id for run in batch.view.runs_read}
            unread = [link for link in links if link["key"] not in linked]
            if unread:
                await bulk["link_runs"].update(conn, unread, where_null="incident_id")
        if batch.resolved:
            # Runs of resolved incidents that the batch did not read: a fingerprint firing
            # again after resolution is a new story. (Those it read are closed in memory.)
            # A correlation run's scope is its incident, and so is its incident_id (set from
            # the event, never changed): one statement finds both kinds of runs, by index.
            ids = sorted(batch.resolved)
            read = batch.view.read_run_ids
            closing = (
                update(_RUNS)
                .where(_RUNS.c.incident_id.in_(ids))
                .where(_RUNS.c.is_current.is_(True))
            )
            if read:
                closing = closing.where(_RUNS.c.id.not_in(read))
            await session.execute(closing.values(is_current=False))
        changed = [run.changes() for run in batch.view.runs_read if run.dirty]
        if changed:
            # Closing runs first, so that a new current run never meets an old one.
            await bulk["runs_by_id"].update(conn, changed)
        if batch.new_runs:
            await bulk["runs"].insert(conn, [run.values() for run in batch.new_runs])
        if batch.services:
            insert = self._insert
            await session.execute(
                insert(_SERVICES).on_conflict_do_nothing(index_elements=["incident_id", "service"]),
                [{"incident_id": i, "service": s} for i, s in sorted(batch.services)],
            )
        session.add_all(batch.opened)  # incidents: the ORM writes what changed


class _Bulk:
    """Many rows of one table in one statement (PostgreSQL: arrays through `unnest`, one
    round trip) or one prepared statement run for each (SQLite: `executemany`), the
    parameters handed to the driver as they are: SQLAlchemy's processing of every
    parameter of every row was 10-14 % of the recorder's CPU in a py-spy profile of
    bench.pipeline (issue 16). Values are converted here only where the driver would not
    store what SQLAlchemy stores: SQLite's timestamps are SQLAlchemy's text format."""

    def __init__(self, table: Table, columns: list[str], dialect: Any, key: str = "") -> None:
        self.table = table
        self.columns = columns
        self.key = key  # the column an UPDATE finds its row by (its parameter is "key")
        self.pg = dialect.name == "postgresql"
        self.dialect = dialect
        cols = [table.c[name] for name in columns]
        if self.pg:
            # JSON goes as text (asyncpg sends text for json anyway) and is cast back;
            # strings as text, not VARCHAR(n): an explicit cast would cut a value too long
            # for its column, where the INSERT refuses it.
            self.casts = [
                "text" if isinstance(c.type, JSON | String) else c.type.compile(dialect=dialect)
                for c in cols
            ]
            self.convert: list[Callable[[Any], Any] | None] = [None] * len(cols)
        else:
            self.convert = [
                None
                if isinstance(c.type, JSON)
                else c.type.dialect_impl(dialect).bind_processor(dialect)
                for c in cols
            ]

    def _params(self, rows: Iterable[dict[str, Any]], names: list[str]) -> list[tuple[Any, ...]]:
        converters = list(zip(names, [*self.convert, None], strict=False))
        return [
            tuple(row[n] if f is None or row[n] is None else f(row[n]) for n, f in converters)
            for row in rows
        ]

    def _arrays(self, rows: Iterable[dict[str, Any]], names: list[str]) -> tuple[list[Any], ...]:
        listed = list(rows)
        return tuple([row[name] for row in listed] for name in names)

    async def insert(
        self, conn: AsyncConnection, rows: Iterable[dict[str, Any]], conflict: str = ""
    ) -> int:
        """Insert `rows` (skipping those whose `conflict` column is taken); how many were."""
        table, names = self.table.name, self.columns
        listed = ", ".join(names)
        skip = f" ON CONFLICT ({conflict}) DO NOTHING" if conflict else ""
        if self.pg:
            arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(self.casts))
            values = ", ".join(
                f"CAST(v.{n} AS json)" if isinstance(self.table.c[n].type, JSON) else f"v.{n}"
                for n in names
            )
            sql = (
                f"INSERT INTO {table} ({listed}) SELECT {values} FROM unnest({arrays}) "
                f"AS v({listed}){skip}"
            )
            if conflict:
                found = await conn.exec_driver_sql(
                    f"{sql} RETURNING {conflict}", self._arrays(rows, names)
                )
                return len(found.all())
            result = await conn.exec_driver_sql(sql, self._arrays(rows, names))
            return int(result.rowcount)
        marks = ", ".join("?" for _ in names)
        sql = f"INSERT INTO {table} ({listed}) VALUES ({marks}){skip}"
        result = await conn.exec_driver_sql(sql, self._params(rows, names))
        return int(result.rowcount)

    async def update(
        self, conn: AsyncConnection, rows: list[dict[str, Any]], where_null: str = ""
    ) -> None:
        """Set the columns of the rows found by their key (`"key"` in each row), only where
        `where_null` is still NULL when given. Keys must be distinct."""
        table, names = self.table.name, self.columns
        unset = f" AND t.{where_null} IS NULL" if where_null else ""
        if self.pg:
            key = self.table.c[self.key].type
            key_type = "text" if isinstance(key, String) else key.compile(dialect=self.dialect)
            arrays = ", ".join(f"${i + 2}::{t}[]" for i, t in enumerate(self.casts))
            sets = ", ".join(f"{n} = v.{n}" for n in names)
            sql = (
                f"UPDATE {table} AS t SET {sets} FROM unnest($1::{key_type}[], {arrays}) "
                f"AS v(key, {', '.join(names)}) WHERE t.{self.key} = v.key{unset}"
            )
            await conn.exec_driver_sql(sql, self._arrays(rows, ["key", *names]))
            return
        sets = ", ".join(f"{n} = ?" for n in names)
        unset = f" AND {where_null} IS NULL" if where_null else ""
        sql = f"UPDATE {table} SET {sets} WHERE {self.key} = ?{unset}"
        await conn.exec_driver_sql(sql, self._params(rows, [*names, "key"]))


class _Stopwatch:
    """Where a slow transaction spent its time, for the log."""

    SLOW_S = 1.0

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append((name, now - self.last))
        self.last = now

    def report_if_slow(self, what: str) -> None:
        total = self.last - self.started
        if total >= self.SLOW_S:
            laps = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in self.laps)
            log.warning("%s took %.1f s: %s", what, total, laps)


RunKey = tuple[str, str, str]  # kind, scope, fingerprint


def _run_key(event: AlertRaised | AlertCorrelated) -> RunKey:
    return (event.event_type, _scope(event), event.fingerprint)


def _chunks(values: Iterable[Any], size: int = 500) -> list[list[Any]]:
    ordered = sorted(set(values))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


Among = tuple[ColumnElement[bool], dict[str, Any]]  # a condition and its parameters


def _among(column: ColumnElement[Any], values: Iterable[Any], pg: bool) -> list[Among]:
    """Conditions that together find the rows whose `column` is one of `values`, each with
    the parameters to execute its statement with.

    PostgreSQL gets one array parameter (`= ANY($1)`): one statement text whatever the
    count, so asyncpg prepares it once, where an IN list of n parameters is a statement of
    its own for each n (prepared anew, and SQLAlchemy processes each parameter). SQLite
    gets IN lists of at most 500 parameters (its limit on variables). The condition is
    made once per column, its keys a named parameter: a condition made for every batch
    left a reference cycle (SQLAlchemy's BindParameter) per call, most of the cyclic
    garbage the recorder's collections found (issue 16, gc.DEBUG_SAVEALL)."""
    condition, name = _condition(column, pg)
    if pg:
        ordered = sorted(set(values))
        return [(condition, {name: ordered})] if ordered else []
    return [(condition, {name: chunk}) for chunk in _chunks(values)]


_CONDITIONS: dict[tuple[str, bool], tuple[ColumnElement[bool], str]] = {}


def _condition(column: ColumnElement[Any], pg: bool) -> tuple[ColumnElement[bool], str]:
    """`column` is one of the values of a named parameter (its name beside it)."""
    name = f"among_{column.table.name}_{column.key}"
    found = _CONDITIONS.get((name, pg))
    if found is None:
        if pg:
            # text[], not VARCHAR(n)[]: that cast would cut a longer key and match another.
            kind = postgresql.ARRAY(Text() if isinstance(column.type, String) else column.type)
            found = (column == any_(bindparam(name, type_=kind)), name)
        else:
            found = (column.in_(bindparam(name, expanding=True)), name)
        _CONDITIONS[(name, pg)] = found
    return found


@dataclass(eq=False)
class _Run:
    """A row of `alert_occurrences` as a batch sees it; `id` is None until inserted."""

    id: int | None
    kind: str
    scope: str
    fingerprint: str
    status: str
    service: str
    incident_id: str | None
    first_event_id: str
    last_event_id: str
    count: int
    first_at: datetime
    last_at: datetime
    is_current: bool
    dirty: bool = field(default=False, compare=False)

    @property
    def key(self) -> RunKey:
        return (self.kind, self.scope, self.fingerprint)

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS}

    def changes(self) -> dict[str, Any]:
        """An UPDATE's parameters: every column the batch may change, by id."""
        return {"key": self.id, **self.values()}


_NOT_SET = {"id", "dirty"}
# The columns a run writes, worked out once (dataclasses.fields() on every row was 2 % of
# the recorder's CPU in a py-spy profile of bench.pipeline).
_COLUMNS = tuple(f.name for f in fields(_Run) if f.name not in _NOT_SET)


@dataclass
class _BatchView:
    """What a batch needs to know of the tables, read up front in a few queries rather
    than several per event: ids already stored, the incident of events triage already
    reacted to, the current runs the batch may count into, close or link (locked until
    commit), the incidents it touches (locked too), and, for an incident the batch opens,
    the events stored before its opening (replayed into the projection)."""

    seen: set[str]
    reactions: dict[str, str]
    runs_read: list[_Run]
    incidents: dict[str, IncidentRow]
    earlier: list[tuple[str | None, str, datetime, datetime, Event]]

    @property
    def read_run_ids(self) -> list[int]:
        return [run.id for run in self.runs_read if run.id is not None]

    @classmethod
    async def load(cls, session: AsyncSession, events: list[Event], pg: bool) -> _BatchView:
        ids = [e.event_id for e in events]
        causes = [e.causation_id for e in events if e.causation_id and e.incident_id]
        seen: set[str] = set()
        reactions: dict[str, str] = {}
        for (stored, p1), (counted, p2), (reacting, p3) in zip(
            _among(_EVENTS.c.event_id, ids, pg),
            _among(_PROCESSED.c.event_id, ids, pg),
            _among(_EVENTS.c.causation_id, ids, pg),
            strict=True,
        ):
            seen.update(
                await session.scalars(
                    union_all(
                        select(_EVENTS.c.event_id).where(stored),
                        select(_PROCESSED.c.event_id).where(counted),
                    ),
                    {**p1, **p2},
                )
            )
            found = await session.execute(
                select(_EVENTS.c.causation_id, _EVENTS.c.incident_id)
                .where(reacting)
                .where(_EVENTS.c.incident_id.is_not(None)),
                p3,
            )
            for cause, incident in found.all():
                if cause and incident:
                    reactions.setdefault(cause, incident)
        runs = await _current_runs(session, events, causes, pg)
        incident_ids = {e.incident_id for e in events if e.incident_id}
        incidents: dict[str, IncidentRow] = {}
        for among, params in _among(cast(ColumnElement[str], IncidentRow.id), incident_ids, pg):
            rows = await session.scalars(select(IncidentRow).where(among).with_for_update(), params)
            incidents.update((row.id, row) for row in rows)
        opening = {
            e.incident_id
            for e in events
            if isinstance(e, SeverityAssigned) and e.incident_id not in incidents
        }
        earlier = await _stored_before(session, opening, causes, pg) if opening else []
        return cls(seen, reactions, runs, incidents, earlier)


async def _current_runs(
    session: AsyncSession, events: list[Event], causes: list[str], pg: bool
) -> list[_Run]:
    """The current runs the batch may count into or close (those of its fingerprints)
    or link to an incident (those its reactions' causes started)."""
    # (A reaction's: the run its cause was counted into, when the cause is not a run's first.)
    fingerprints = {
        e.fingerprint
        for e in events
        if isinstance(e, AlertRaised | AlertCorrelated | SeverityAssigned)
    }
    # The columns in the order of _Run's fields: a row builds a run by position.
    current = select(*(_RUNS.c[name] for name in ("id", *_COLUMNS))).where(_CURRENT)
    queries = [(current.where(c), p) for c, p in _among(_RUNS.c.fingerprint, fingerprints, pg)]
    queries += [(current.where(c), p) for c, p in _among(_RUNS.c.first_event_id, causes, pg)]
    runs: dict[int, _Run] = {}
    for query, params in queries:
        for row in await session.execute(query.with_for_update(), params):
            if row[0] not in runs:
                run = _Run(*row)
                run.first_at, run.last_at = as_utc(run.first_at), as_utc(run.last_at)
                runs[row[0]] = run
    return list(runs.values())


async def _stored_before(
    session: AsyncSession, opening: set[str | None], causes: list[str], pg: bool
) -> list[tuple[str | None, str, datetime, datetime, Event]]:
    """Events stored before this batch that an opening may replay: those of the incidents
    being opened, and the batch's causes not yet on any incident (a reaction may link one
    before the opening). As (incident_id, event_id, occurred_at, recorded_at, event)."""
    out: list[tuple[str | None, str, datetime, datetime, Event]] = []
    query = select(
        _EVENTS.c.incident_id,
        _EVENTS.c.event_id,
        _EVENTS.c.occurred_at,
        _EVENTS.c.recorded_at,
        _EVENTS.c.payload,
    )
    conditions = _among(_EVENTS.c.incident_id, (i for i in opening if i), pg)
    conditions += [
        (among & _EVENTS.c.incident_id.is_(None), params)
        for among, params in _among(_EVENTS.c.event_id, causes, pg)
    ]
    for condition, params in conditions:
        for incident, event_id, occurred, recorded, payload in await session.execute(
            query.where(condition), params
        ):
            event = _parse(payload)
            if event is not None:
                out.append((incident, event_id, as_utc(occurred), as_utc(recorded), event))
    return out


class _Batch:
    """A batch decided in memory, event by event, over what `_BatchView` read.

    Its outputs are what `TimelineStore._write` stores: new timeline rows (`rows`),
    counted ids (`counted`), links of alerts stored earlier to an incident (`links`, in
    order: the first wins), runs read and changed or new, incidents resolved (their other
    runs are closed), the services of changed incidents, and incidents opened.
    """

    def __init__(self, view: _BatchView, now: Callable[[], datetime]) -> None:
        self.view = view
        self._now = now
        self.rows: dict[str, dict[str, Any]] = {}
        self.counted: list[tuple[str, datetime]] = []
        self.links: list[tuple[str, str]] = []
        self.new_runs: list[_Run] = []
        self.resolved: set[str] = set()
        self.services: set[tuple[str, str]] = set()
        self.opened: list[IncidentRow] = []
        self._events: dict[str, Event] = {}  # the stored ones, for an opening's replay
        self._runs: dict[RunKey, _Run] = {}
        self._started_by: dict[str, _Run] = {}
        for run in view.runs_read:
            self._runs[run.key] = run
            self._started_by[run.first_event_id] = run

    def take(self, event: Event) -> Outcome:
        view = self.view
        if event.event_id in view.seen:
            return Outcome.DUPLICATE
        if isinstance(event, AlertRaised | AlertCorrelated) and self._count_repeat(event):
            view.seen.add(event.event_id)
            return Outcome.COUNTED
        incident_id = event.incident_id or view.reactions.get(event.event_id)
        self.rows[event.event_id] = {
            "event_id": event.event_id,
            "event_type": event.event_type,
            "incident_id": incident_id,
            "causation_id": event.causation_id,
            "action_id": _action_id(event),
            "silence_id": _silence_id(event),
            "occurred_at": event.occurred_at,
            "recorded_at": self._now(),
            # As JSON text straight from pydantic (compact; stored as is).
            "payload": event.model_dump_json(),
        }
        self._events[event.event_id] = event
        view.seen.add(event.event_id)
        if isinstance(event, AlertRaised | AlertCorrelated):
            # A status change starts a new run; the previous one stays as history.
            current = self._current_run(_run_key(event))
            if current is not None:
                current.is_current = False
                current.dirty = True
            self._start_run(event, incident_id)
        if event.incident_id and event.causation_id:
            view.reactions.setdefault(event.causation_id, event.incident_id)
            self._link_cause(event.causation_id, event.incident_id)
            if isinstance(event, AlertCorrelated | SeverityAssigned):
                self._link_counted_cause(event, event.causation_id, event.incident_id)
        if event.incident_id:
            self._project(event)
        return Outcome.STORED

    # -- dedup and alert runs -------------------------------------------------------------

    def _current_run(self, key: RunKey) -> _Run | None:
        run = self._runs.get(key)
        # An incident's resolution in this batch may have closed it.
        return run if run is not None and run.is_current else None

    def _count_repeat(self, event: AlertRaised | AlertCorrelated) -> bool:
        """Count `event` into the current run of its fingerprint if it repeats it."""
        run = self._current_run(_run_key(event))
        if run is None or run.status != event.status.value:
            return False
        run.count += 1
        run.dirty = True
        at = event.occurred_at
        if at >= run.last_at:
            run.last_at = at
            run.last_event_id = event.event_id
        if at < run.first_at:
            run.first_at = at
        if isinstance(event, AlertCorrelated) and event.incident_id:
            # A repeat correlated to an incident tells which incident the raw run is in.
            raw = self._current_run((AlertRaised.EVENT_TYPE, "", event.fingerprint))
            if raw is not None and raw.incident_id is None:
                raw.incident_id = event.incident_id
                raw.dirty = True
        elif run.incident_id is None and (incident := self.view.reactions.get(event.event_id)):
            # Triage reacted to this copy, the recorder stored another (one alert posted to
            # two detectors; the replica that won had this one): the run is the incident's.
            self._link_run(run, incident)
        self.counted.append((event.event_id, self._now()))
        return True

    def _start_run(self, event: AlertRaised | AlertCorrelated, incident_id: str | None) -> None:
        run = _Run(
            id=None,
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
        self.new_runs.append(run)
        self._runs[run.key] = run
        self._started_by[event.event_id] = run

    # -- linking alerts and the events that react to them ------------------------------------

    def _link_cause(self, cause_id: str, incident_id: str) -> None:
        row = self.rows.get(cause_id)
        if row is None:
            self.links.append((cause_id, incident_id))  # stored before: an UPDATE
        elif row["incident_id"] is None:
            row["incident_id"] = incident_id
        run = self._started_by.get(cause_id)
        if run is not None and run.incident_id is None:
            run.incident_id = incident_id
            run.dirty = True

    def _link_counted_cause(
        self, reaction: AlertCorrelated | SeverityAssigned, cause_id: str, incident_id: str
    ) -> None:
        """A reaction whose cause started no run known here: the cause was counted into a
        run of its fingerprint (or has not arrived; then `_count_repeat` links it). The
        current raw run is the cause's if it is in the cause's status, began no later than
        the reaction, and is in no incident yet: that run and its stored first alert are
        the incident's, as they would be had triage reacted to that first alert."""
        if cause_id in self.rows or cause_id in self._started_by:
            return
        run = self._current_run((AlertRaised.EVENT_TYPE, "", reaction.fingerprint))
        status = reaction.status.value if isinstance(reaction, AlertCorrelated) else "firing"
        if (
            run is not None
            and run.incident_id is None
            and run.status == status
            and run.first_at <= reaction.occurred_at
        ):
            self._link_run(run, incident_id)

    def _link_run(self, run: _Run, incident_id: str) -> None:
        """`run` and the alert that began it (the run's row on the timeline) join the incident."""
        run.incident_id = incident_id
        run.dirty = True
        row = self.rows.get(run.first_event_id)
        if row is None:
            self.links.append((run.first_event_id, incident_id))  # stored before: an UPDATE
        elif row["incident_id"] is None:
            row["incident_id"] = incident_id

    # -- the incident projection ----------------------------------------------------------

    def _project(self, event: Event) -> None:
        assert event.incident_id
        row = self.view.incidents.get(event.incident_id)
        now = self._now()
        if row is None:
            if not isinstance(event, SeverityAssigned):
                return  # kept on the timeline; replayed when the incident's opening arrives
            row = projection.open_incident(event, now)
            self.view.incidents[row.id] = row
            self.opened.append(row)
            # Events of this incident that arrived before its opening (other streams).
            for replayed in self._before_opening(row.id, event.event_id):
                projection.apply(row, replayed)
        elif projection.apply(row, event):
            row.updated_at = now
        else:
            return
        self.services.update((row.id, service) for service in row.services or [])
        if isinstance(event, IncidentResolved):
            # A fingerprint firing again after resolution is a new story: start new runs.
            self.resolved.add(row.id)
            for run in self._runs_of(row.id):
                run.is_current = False
                run.dirty = True

    def _runs_of(self, incident_id: str) -> Iterable[_Run]:
        for run in [*self.view.runs_read, *self.new_runs]:
            if run.is_current and incident_id in (run.incident_id, run.scope):
                yield run

    def _before_opening(self, incident_id: str, opening_id: str) -> list[Event]:
        """The incident's events stored so far (before this batch or in it), in time order."""
        first: dict[str, str] = {}
        for cause, inc in self.links:
            first.setdefault(cause, inc)  # the first link wins
        linked = {cause for cause, inc in first.items() if inc == incident_id}
        found: dict[str, tuple[datetime, datetime, Event]] = {}
        for incident, event_id, occurred, recorded, event in self.view.earlier:
            if incident == incident_id or (incident is None and event_id in linked):
                found[event_id] = (occurred, recorded, event)
        for event_id, row in self.rows.items():
            if row["incident_id"] == incident_id:
                found[event_id] = (row["occurred_at"], row["recorded_at"], self._events[event_id])
        found.pop(opening_id, None)
        return [event for _, _, event in sorted(found.values(), key=lambda v: (v[0], v[1]))]


def _scope(event: AlertRaised | AlertCorrelated) -> str:
    if isinstance(event, AlertCorrelated):
        return event.incident_id or ""
    return ""


# By class: isinstance() of a pydantic model goes through ABCMeta, 3 % of the recorder's
# CPU in a profile for these two look-ups of every event.
_WITH_ACTION = (ActionRequested, ActionCompleted, ActionApproved, ActionRefused)
_WITH_SILENCE = (SilenceCreated, SilenceExpired, AlertSilenced)
_ACTION_TYPES = {cls.EVENT_TYPE for cls in _WITH_ACTION}
_SILENCE_TYPES = {cls.EVENT_TYPE for cls in _WITH_SILENCE}


def _action_id(event: Event) -> str | None:
    if event.event_type in _ACTION_TYPES and isinstance(event, _WITH_ACTION):
        return event.action_id[:64]
    return None


def _silence_id(event: Event) -> str | None:
    if event.event_type in _SILENCE_TYPES and isinstance(event, _WITH_SILENCE):
        return event.silence_id[:64]
    return None


def _parse(payload: dict[str, Any]) -> Event | None:
    cls = EVENT_TYPES.get(str(payload.get("event_type")))
    return cls.model_validate(payload) if cls else None
