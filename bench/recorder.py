"""Recorder benchmark: how many events/s the recorder stores from a backlog, as its own process.

The streams are filled first with what triage makes of unique alerts: each AlertRaised
(unique fingerprint, ~50 services) is followed by triage's reaction caused by it — the
SeverityAssigned that opens its incident for the first alert of each of ~50 incidents,
an AlertCorrelated joining it for every other alert. Then `jarvis-ir serve recorder`
starts and the backlog is timed from the moment its consumer groups exist (after imports
and migrations) until every entry is acknowledged. The figure stands beside the raw Redis
Streams ceiling measured in the same run (`bench.pipeline.raw_ceiling`).

It also counts the bytes written to storage per event, data and WAL: /proc/<pid>/io
`write_bytes` of the recorder process (SQLite writes its WAL and checkpoints from there)
and, with `--postgres`, of every process of the throw-away cluster (backends, WAL writer,
checkpointer), from the start of the drain to the end of a final checkpoint.

    python -m bench.recorder                     # 100,000 events, SQLite in a temp dir
    python -m bench.recorder --quick             # 10,000 events
    python -m bench.recorder --database-url postgresql+asyncpg://…
    python -m bench.recorder --postgres          # a throw-away PostgreSQL 15 cluster, fsync on
    python -m bench.recorder --profile out.txt   # py-spy record the recorder while it drains
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from bench._postgres import ThrowawayPostgres, written_bytes
from bench.pipeline import cpu_seconds, raw_ceiling
from services.recorder.models import EventRow, IncidentRow
from shared.bus import EventBus
from shared.cluster import LocalCluster
from shared.envelope import AlertAdmission
from shared.events import (
    AlertCorrelated,
    AlertRaised,
    AlertSource,
    Event,
    Level,
    Severity,
    SeverityAssigned,
)
from shared.keys import Signer, load_or_create_secret
from shared.streams import ALL_STREAMS

__all__ = ["main", "triage_output"]

SERVICES = 50
INCIDENTS = 50


def triage_output(alerts: int, run: str) -> tuple[list[Event], list[str]]:
    """`alerts` unique alerts and triage's reaction to each, in the order triage emits
    them; returns (events, incident ids)."""
    incidents = [str(uuid.uuid4()) for _ in range(INCIDENTS)]
    opened = datetime.now(UTC)
    events: list[Event] = []
    for i in range(alerts):
        service = f"bench-{run}-svc{i % SERVICES}"
        alert = AlertRaised(
            service=service,
            check=f"bench-{run}-{i}",
            summary="benchmark alert",
            source=AlertSource.API,
            producer="detector",
            impact=Level.MEDIUM,
            urgency=Level.LOW,
        )
        incident = incidents[i % INCIDENTS]
        envelope = {
            "producer": "triage",
            "incident_id": incident,
            "correlation_id": incident,
            "causation_id": alert.event_id,
            "fingerprint": alert.fingerprint,
        }
        reaction: Event
        if i < INCIDENTS:
            reaction = SeverityAssigned(
                **envelope,
                severity=Severity.P2,
                impact=Level.MEDIUM,
                urgency=Level.LOW,
                response_due_at=opened + timedelta(hours=1),
                opened_at=opened,
                reason="impact medium × urgency low",
                service=service,
                title=f"{service} incident",
                services=[service],
            )
        else:
            reaction = AlertCorrelated(
                **envelope, service=service, status=alert.status, reason="same service"
            )
        events += [alert, reaction]
    return events, incidents


async def fill(redis: Redis, events: list[Event], workdir: Path, batch: int = 1000) -> None:
    """The backlog as the detector and triage write it: the alerts sealed with the envelope
    key the recorder will read from `workdir` (shared.envelope), so it takes them as stamped."""
    key = load_or_create_secret(workdir / "secrets" / "envelope.key")
    bus = EventBus(redis, seal=AlertAdmission(Signer(key)).seal)
    for start in range(0, len(events), batch):
        await bus.publish_many(events[start : start + batch])


async def _recorder_state(redis: Redis) -> list[bool] | None:
    """For each stream, whether the recorder's group has read and acknowledged all of it;
    None until the group exists on every stream."""
    state = []
    for spec in ALL_STREAMS:
        try:
            groups = {g["name"]: g for g in await redis.xinfo_groups(spec.key)}
            last = (await redis.xinfo_stream(spec.key))["last-generated-id"]
        except Exception:  # the stream does not exist yet
            return None
        group = groups.get(b"recorder")
        if group is None:
            return None
        state.append(not group["pending"] and group["last-delivered-id"] == last)
    return state


def _profiler(pid: int, output: str) -> subprocess.Popen[bytes]:
    """py-spy (installed beside this Python) sampling `pid` into `output` until SIGINT."""
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    args = ["record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking"]
    return subprocess.Popen([py_spy, *args, "--output", output], stdout=subprocess.DEVNULL)


async def drain(
    redis: Redis,
    cluster: LocalCluster,
    profile: str | None,
    timeout_s: float,
    database_pid: int | None = None,
) -> tuple[float, float, int]:
    """Start the recorder, time the backlog from its groups' creation to the last ack;
    returns (seconds, CPU cores used by the recorder over that time, bytes the recorder
    and the database server `database_pid` with its children wrote to storage)."""
    starting = asyncio.create_task(asyncio.to_thread(cluster.add, "recorder"))
    while await _recorder_state(redis) is None:
        if starting.done():
            starting.result()  # raise if it failed to start
        await asyncio.sleep(0.002)
    started = time.perf_counter()
    # The groups exist, so the process does: measure its CPU from here on.
    pid = cluster.services["recorder"].pid
    cpu0 = cpu_seconds(pid)

    def written() -> int:
        server = written_bytes(database_pid, tree=True) if database_pid else 0
        return written_bytes(pid) + server

    io0 = written()
    spy = _profiler(pid, profile) if profile else None
    while not all(await _recorder_state(redis) or [False]):
        if time.perf_counter() - started > timeout_s:
            raise TimeoutError(f"the recorder did not drain in {timeout_s}s")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    cores = (cpu_seconds(pid) - cpu0) / elapsed
    io = written() - io0
    await starting
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        await asyncio.to_thread(spy.wait, 60)
    return elapsed, cores, io


async def checkpoint(database_url: str, database_pid: int | None) -> int:
    """Bytes written to make the database files whole: SQLite's WAL copied into the
    database (by this process), PostgreSQL's dirty buffers flushed (by its checkpointer)."""
    before = written_bytes(os.getpid()) + (
        written_bytes(database_pid, tree=True) if database_pid else 0
    )
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            await conn.exec_driver_sql("CHECKPOINT")
    await engine.dispose()
    after = written_bytes(os.getpid()) + (
        written_bytes(database_pid, tree=True) if database_pid else 0
    )
    return after - before


async def stored(database_url: str, incidents: list[str]) -> tuple[int, int]:
    """(events linked to the bench's incidents, incidents opened)."""
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        events = await conn.scalar(
            select(func.count()).select_from(EventRow).where(EventRow.incident_id.in_(incidents))
        )
        opened = await conn.scalar(
            select(func.count()).select_from(IncidentRow).where(IncidentRow.id.in_(incidents))
        )
    await engine.dispose()
    return int(events or 0), int(opened or 0)


async def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(ThrowawayPostgres()) if args.postgres else None
        return await _run(args, pg.url if pg else args.database_url, pg.pid if pg else None)


async def _run(args: argparse.Namespace, database_url: str | None, db_pid: int | None) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="jarvis-bench-recorder-"))
    database_url = database_url or f"sqlite+aiosqlite:///{workdir / 'recorder.sqlite3'}"
    count = args.events or (10_000 if args.quick else 100_000)
    events, incidents = triage_output(count // 2, uuid.uuid4().hex[:8])
    with LocalCluster(workdir, database_url=database_url) as cluster:
        redis = Redis.from_url(cluster.redis_url)
        ceiling = await raw_ceiling(redis, 20_000 if args.quick else 100_000)
        await fill(redis, events, workdir)
        elapsed, cores, io = await drain(redis, cluster, args.profile, 1800, db_pid)
        io += await checkpoint(database_url, db_pid)
        await redis.aclose()
        linked, opened = await stored(database_url, incidents)
    rate = len(events) / elapsed
    where = "the recorder" + (" + every PostgreSQL process" if db_pid else "")
    print(f"\nraw Redis Streams ceiling (XADD+XREADGROUP+XACK, batches of 100): {ceiling:,.0f}/s")
    print(
        f"  recorder on {database_url.split(':', 1)[0]}, {len(events):,} events "
        f"({len(events) // 2:,} unique alerts + triage's reactions, {INCIDENTS} incidents)"
    )
    print(
        f"  drained in {elapsed:.1f} s: {rate:,.0f} events/s = {rate / ceiling:.3f} of ceiling; "
        f"recorder CPU {cores:.2f} cores"
    )
    print(
        f"RESULT recorder bytes written per event ({database_url.split(':', 1)[0]}, data + WAL, "
        f"/proc write_bytes of {where}, checkpoint included): "
        f"{io / len(events):,.0f} B/event (target <= 4 KB)"
    )
    ok = linked == len(events) and opened == INCIDENTS
    print(
        f"  check: {linked:,} events on the incidents' timelines (expected {len(events):,}), "
        f"{opened} incidents (expected {INCIDENTS}): {'ok' if ok else 'WRONG'}"
    )
    if args.profile:
        print(f"  py-spy profile (raw/collapsed stacks): {args.profile}")
    return 0 if ok else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recorder", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 events (smoke run)")
    parser.add_argument("--events", type=int, help="how many events (default 100,000)")
    parser.add_argument("--database-url", help="recorder database (default: SQLite in a temp dir)")
    parser.add_argument(
        "--postgres", action="store_true", help="a throw-away PostgreSQL cluster (fsync on)"
    )
    parser.add_argument("--profile", help="py-spy the recorder while it drains into this file")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
