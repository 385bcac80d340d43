"""End-to-end pipeline benchmark: detector → triage → recorder as separate processes.

Prints one table; every figure stands beside the raw Redis Streams ceiling measured in the
same run on the same Redis (pipelined XADD + XREADGROUP + XACK, batches of 100), because
these machines are noisy and a bare number would mean little.

    python -m bench.pipeline            # full run (about 3 minutes)
    python -m bench.pipeline --quick    # smaller counts, for a smoke run
    python -m bench.pipeline --postgres # the recorder on a throw-away PostgreSQL, fsync on
    python -m bench.pipeline --only latency --seconds 20   # one part, shorter
    python -m bench.pipeline --only throughput --spy triage.txt  # py-spy of triage meanwhile

The latency part also splits each sample into its hops, from the stream entry ids (the time
Redis appended each entry): the alert's `occurred_at` → the detector's XADD → triage's XADD
of its answer → the recorder's `recorded_at`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from bench._postgres import ThrowawayPostgres, written_bytes
from services.recorder.models import IncidentRow
from shared.bus import as_text
from shared.cluster import LocalCluster

__all__ = ["main"]


async def raw_ceiling(redis: Redis, count: int, batch: int = 100) -> float:
    """Entries/s through a bare stream: pipelined XADD, XREADGROUP and XACK in batches."""
    key, group = f"bench:raw:{uuid.uuid4().hex}", "g"
    await redis.xgroup_create(key, group, id="0", mkstream=True)
    payload = json.dumps({"service": "backend", "check": "health", "summary": "x" * 80})
    started = time.perf_counter()
    for start in range(0, count, batch):
        pipe = redis.pipeline(transaction=False)
        for _ in range(min(batch, count - start)):
            pipe.xadd(key, {"__data__": payload})
        await pipe.execute()
    done = 0
    while done < count:
        resp = await redis.xreadgroup(group, "c", {key: ">"}, count=batch)
        ids = [entry_id for _, entries in resp for entry_id, _ in entries]
        await redis.xack(key, group, *ids)
        done += len(ids)
    elapsed = time.perf_counter() - started
    await redis.delete(key)
    return count / elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU time each named process used between `start` and `per_item`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def total_per_item(self, items: int) -> float:
        """µs of CPU per item, every process together."""
        used = sum(cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items())
        return used / items * 1e6

    def per_item(self, items: int) -> str:
        used = {name: cpu_seconds(pid) - self.before[name] for name, pid in self.pids.items()}
        return ", ".join(f"{name} {sec / items * 1e6:,.0f}" for name, sec in used.items())


async def drained(redis: Redis) -> bool:
    """True when triage and the recorder have read and acknowledged everything."""
    for key, groups in (
        ("jarvis:alerts", ("triage", "recorder")),
        ("jarvis:severity", ("recorder",)),
        ("jarvis:incidents", ("recorder",)),
    ):
        try:
            info = {g["name"].decode(): g for g in await redis.xinfo_groups(key)}
            last = (await redis.xinfo_stream(key))["last-generated-id"]
        except Exception:
            continue
        for group in groups:
            g = info.get(group)
            if g is None or g["pending"] or g["last-delivered-id"] != last:
                return False
    return True


async def wait_drained(redis: Redis, timeout_s: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if await drained(redis):
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    raise TimeoutError(f"pipeline not drained after {timeout_s}s")


def _alert(i: int, run: str, **extra: Any) -> dict[str, Any]:
    # Unique fingerprints over 50 services: each alert is new, and joins its service's
    # incident (as a real alert stream does) rather than opening thousands of incidents.
    return {
        "service": f"bench-{run}-svc{i % 50}",
        "check": f"bench-{run}-{i}",
        "summary": "benchmark alert",
        "impact": "medium",
        "urgency": "low",
        **extra,
    }


async def throughput(detector_url: str, redis: Redis, count: int) -> tuple[float, float]:
    """Unique alerts POSTed in batches of 100; returns (alerts/s end to end, ingest alerts/s)."""
    run = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=detector_url, timeout=30) as client:
        for start in range(0, count, 100):
            body = [_alert(i, run) for i in range(start, min(start + 100, count))]
            resp = await client.post("/api/v1/alerts", json=body)
            resp.raise_for_status()
    ingest = time.perf_counter() - started
    await wait_drained(redis, timeout_s=300)
    return count / (time.perf_counter() - started), count / ingest


async def latency(
    detector_url: str, redis: Redis, database_url: str, rate: int, seconds: float
) -> tuple[float, float, float, int, list[str]]:
    """Alerts at `rate`/s: from the alert's occurred_at to triage's answer (SeverityAssigned
    or AlertCorrelated) stored by the recorder; (p50, p95, p99 ms, samples, hops' lines)."""
    run = uuid.uuid4().hex[:8]
    total = int(rate * seconds)
    tick = 0.02  # send rate/50 alerts every 20 ms
    per_tick = max(1, round(rate * tick))
    marks = {key: await _last_id(redis, key) for key in _ANSWERS}
    started = time.perf_counter()
    sent = 0
    async with httpx.AsyncClient(base_url=detector_url, timeout=30) as client:
        while sent < total:
            now = datetime.now(UTC).isoformat()
            body = [
                _alert(sent + i, run, occurred_at=now) for i in range(min(per_tick, total - sent))
            ]
            (await client.post("/api/v1/alerts", json=body)).raise_for_status()
            sent += len(body)
            delay = started + (sent / rate) - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    await wait_drained(redis, timeout_s=300)  # every alert's sample, however late
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT a.occurred_at, s.recorded_at, a.event_id, s.event_id FROM events s "
                    "JOIN events a ON a.event_id = s.causation_id "
                    "WHERE s.event_type IN ('SeverityAssigned', 'AlertCorrelated') "
                    "AND CAST(a.payload AS TEXT) LIKE :run"
                ),
                {"run": f"%bench-{run}-%"},
            )
        ).all()
    await engine.dispose()
    lat = sorted(
        (_ts(recorded) - _ts(occurred)).total_seconds() * 1000 for occurred, recorded, *_ in rows
    )
    if not lat:
        raise RuntimeError("no latency samples were recorded")
    q = statistics.quantiles(lat, n=100)
    appended = await _appended(redis, marks)
    hops: dict[str, list[float]] = {"detector": [], "triage": [], "recorder": []}
    for occurred, recorded, alert_id, answer_id in rows:
        t1, t2 = appended.get(str(alert_id)), appended.get(str(answer_id))
        if t1 is None or t2 is None:
            continue
        t0, t3 = _ts(occurred).timestamp() * 1000, _ts(recorded).timestamp() * 1000
        hops["detector"].append(t1 - t0)
        hops["triage"].append(t2 - t1)
        hops["recorder"].append(t3 - t2)
    lines = [
        f"{name} p50 {statistics.median(v):.1f} ms, p99 {statistics.quantiles(v, n=100)[98]:.1f}"
        for name, v in hops.items()
        if len(v) > 1
    ]
    return q[49], q[94], q[98], len(lat), lines


# Where the latency run's alerts and triage's answers are appended.
_ANSWERS = ("jarvis:alerts", "jarvis:severity", "jarvis:incidents")


async def _last_id(redis: Redis, key: str) -> str:
    last: Any = await redis.xrevrange(key, count=1)
    return as_text(last[0][0]) if last else "0-0"


async def _appended(redis: Redis, since: dict[str, str]) -> dict[str, float]:
    """event id → when Redis appended its entry (ms), for the entries after `since`."""
    found: dict[str, float] = {}
    for key, start in since.items():
        cursor = start
        while True:
            chunk: Any = await redis.xrange(key, f"({cursor}", "+", count=5000)
            if not chunk:
                break
            for entry_id, fields in chunk:
                data = json.loads(fields.get(b"__data__", b"{}"))
                if isinstance(data, dict) and data.get("event_id"):
                    found[data["event_id"]] = float(as_text(entry_id).split("-")[0])
            cursor = as_text(chunk[-1][0])
    return found


def _ts(value: Any) -> datetime:
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


async def storm(
    redis: Redis, database_url: str, count: int, fingerprints: int
) -> tuple[float, int]:
    """`count` alerts over `fingerprints` fingerprints, XADDed at once; drain time, incidents."""
    run = uuid.uuid4().hex[:8]
    began = datetime.now(UTC)
    started = time.perf_counter()
    for start in range(0, count, 1000):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(start + 1000, count)):
            # One service per fingerprint: exactly `fingerprints` incidents are expected.
            fp = i % fingerprints
            alert = {**_alert(fp, run), "service": f"storm-{run}-{fp}", "check": "storm"}
            pipe.xadd("jarvis:alerts", {"__data__": json.dumps(alert)})
        await pipe.execute()
    await wait_drained(redis, timeout_s=600)
    elapsed = time.perf_counter() - started
    engine = create_async_engine(database_url)
    async with engine.connect() as conn:
        query = select(func.count()).select_from(IncidentRow).where(IncidentRow.opened_at >= began)
        incidents = (await conn.execute(query)).scalar_one()
    await engine.dispose()
    return elapsed, int(incidents)


async def recorded_entries(redis: Redis) -> int:
    """Entries of the streams the recorder reads for the pipeline (alerts, severity,
    incidents): their difference over a run is how many events it recorded."""
    total = 0
    for key in ("jarvis:alerts", "jarvis:severity", "jarvis:incidents"):
        total += int(await redis.xlen(key))
    return total


async def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(ThrowawayPostgres()) if args.postgres else None
        return await _run(args, pg.url if pg else args.database_url, pg.pid if pg else None)


async def _run(args: argparse.Namespace, database_url: str | None, db_pid: int | None) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="jarvis-bench-"))
    database_url = database_url or f"sqlite+aiosqlite:///{workdir / 'recorder.sqlite3'}"
    kind = database_url.split("+", 1)[0].split(":", 1)[0]
    quick = args.quick
    parts = set(args.only or PARTS)
    results: list[str] = []
    with LocalCluster(workdir, database_url=database_url) as cluster:
        redis = Redis.from_url(cluster.redis_url)
        ceiling = await raw_ceiling(redis, 20_000 if quick else 100_000)
        detector = cluster.add(
            "detector",
            JARVIS_DETECTOR__PROBES_ENABLED="false",
            # Every run names 50 new services: no cap on services the stack does not know.
            JARVIS_DETECTOR__MAX_UNKNOWN_SERVICES="1000000",
        )
        processes = {"detector": detector, "triage": cluster.add("triage")}
        processes["recorder"] = cluster.add("recorder")
        pids = {name: proc.pid for name, proc in processes.items()}
        assert cluster.redis is not None
        meter = CpuMeter({**pids, "redis": cluster.redis.pid})
        rows: list[tuple[str, str, str]] = []
        cpu = ""

        def written() -> int:
            server = written_bytes(db_pid, tree=True) if db_pid else 0
            return written_bytes(pids["recorder"]) + server

        spy = _spy(args.spy, pids[args.spy_on]) if args.spy else None
        if "throughput" in parts:
            n = args.alerts or (2_000 if quick else 20_000)
            entries0, io0 = await recorded_entries(redis), written()
            spy = _spy(args.spy, pids[args.spy_on]) if args.spy else None
            batches0 = await _batches(processes["triage"].url)
            meter.start()
            e2e, ingest = await throughput(detector.url, redis, n)
            batches = await _batches(processes["triage"].url) - batches0
            cpu = meter.per_item(n)
            cpu_total = meter.total_per_item(n)
            io, entries = written() - io0, await recorded_entries(redis) - entries0
            rows.append(
                (
                    f"throughput, {n:,} unique alerts",
                    f"{e2e:,.0f} alerts/s (ingest {ingest:,.0f}/s)",
                    f"{e2e / ceiling:.3f} of ceiling",
                )
            )
            each = f"{n / max(batches, 1):,.1f} alerts each"
            rows.append(("  triage's batches of alerts", each, ""))
            results.append(
                f"{e2e:,.0f} unique alerts/s end to end (= {e2e / ceiling:.3f} of the raw "
                f"ceiling {ceiling:,.0f}/s); CPU {cpu_total:,.0f} µs/alert in all ({cpu})"
            )
            where = "the recorder" + (" + every PostgreSQL process" if db_pid else "")
            io_line = (
                f"RESULT pipeline recorder writes on {kind} (throughput run, /proc write_bytes "
                f"of {where}, no final checkpoint): {io / max(entries, 1):,.0f} B/event "
                f"({entries:,} events recorded, {io / n:,.0f} B/alert)"
            )
        hops: list[str] = []
        if "latency" in parts:
            rate = args.rate or (200 if quick else 500)
            seconds = args.seconds or (5.0 if quick else 60.0)
            p50, p95, p99, samples, hops = await latency(
                detector.url, redis, database_url, rate, seconds
            )
            rows.append(
                (
                    f"latency at {rate}/s for {seconds:.0f}s ({samples:,} samples)",
                    f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms",
                    f"p99 = {p99 / 1000 * ceiling:,.0f} raw entries' time",
                )
            )
            results.append(f"p99 {p99:.1f} ms at {rate}/s")
        if "storm" in parts:
            count, fps = (10_000, 10) if quick else (100_000, 100)
            count, fps = args.storm or count, args.fingerprints or fps
            meter.start()
            elapsed, incidents = await storm(redis, database_url, count, fps)
            storm_cpu = meter.per_item(count)
            rows.append(
                (
                    f"storm, {count:,} alerts over {fps} fingerprints",
                    f"drained in {elapsed:.1f} s ({count / elapsed:,.0f}/s), "
                    f"{incidents} incidents (expected {fps})",
                    f"{count / elapsed / ceiling:.3f} of ceiling",
                )
            )
            rows.append(("  CPU µs per storm alert", storm_cpu, ""))
            results.append(f"storm {elapsed:.1f} s, {incidents} incidents (expected {fps})")
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile when interrupted
            spy.wait(timeout=60)
        await redis.aclose()

    if cpu:
        print(f"\nCPU µs per unique alert in the throughput run: {cpu}")
    print(f"\nraw Redis Streams ceiling (XADD+XREADGROUP+XACK, batches of 100): {ceiling:,.0f}/s")
    width = max(len(r[0]) for r in rows)
    for name, value, ratio in rows:
        print(f"  {name:<{width}}  {value:<48}  {ratio}")
    for line in hops:
        print(f"    hop {line}")
    print(f"RESULT pipeline on {kind}: " + "; ".join(results))
    if "throughput" in parts:
        print(io_line)
    return 0


PARTS = ("throughput", "latency", "storm")


async def _batches(url: str) -> float:
    """How many batches triage's consumer of jarvis:alerts has handled so far."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        metrics = (await client.get("/metrics")).text
    for line in metrics.splitlines():
        if line.startswith("jarvis_event_handle_seconds_count") and '"jarvis:alerts"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _spy(out: str, pid: int) -> subprocess.Popen[bytes]:
    """py-spy (next to this Python) recording `pid` into `out` in its raw (collapsed) form."""
    py_spy = Path(sys.executable).parent / "py-spy"
    cmd = [str(py_spy), "record", "--format", "raw", "--rate", "200", "-o", out]
    return subprocess.Popen([*cmd, "--pid", str(pid)], stdout=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (smoke run)")
    parser.add_argument("--database-url", help="recorder database (default: SQLite in a temp dir)")
    parser.add_argument(
        "--postgres", action="store_true", help="a throw-away PostgreSQL cluster (fsync on)"
    )
    parser.add_argument(
        "--only", action="append", choices=PARTS, help="run only this part (repeatable)"
    )
    parser.add_argument("--alerts", type=int, help="throughput: unique alerts (20,000)")
    parser.add_argument("--rate", type=int, help="latency: alerts/s (500)")
    parser.add_argument("--seconds", type=float, help="latency: how long (60 s)")
    parser.add_argument("--storm", type=int, help="storm: alerts (100,000)")
    parser.add_argument("--fingerprints", type=int, help="storm: fingerprints (100)")
    parser.add_argument("--spy", help="py-spy raw profile of a process over the run (a file)")
    parser.add_argument(
        "--spy-on", default="triage", choices=("detector", "triage", "recorder"), help="(triage)"
    )
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
