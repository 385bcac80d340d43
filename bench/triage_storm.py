"""Benchmark: an alert storm through triage, against the raw Redis Streams ceiling.

    python -m bench.triage_storm [--alerts 100000] [--fingerprints 100] [--services N]
                                 [--redis-url URL]

Both figures are measured in the same run on the same Redis server (an embedded
redis-server unless --redis-url / REDIS_URL names one; the bench flushes that database):

* ceiling: pipelined XADD of every alert, then XREADGROUP (COUNT 1000) and pipelined XACK
  until the group has read and acknowledged everything — what Redis Streams alone allow;
* consumer layer: the project's own consumer (shared/stream_consumer.py) with a
  handler that does nothing — the cost every service pays before its own work;
* triage: the triage service hosted in-process as in production (its consumer
  group, classification, grouping, atomic commits, playbook starts); the same alerts are
  published the same way and the clock stops when the group has acknowledged the last one.

Prints drain time, alerts/s and triage's share of the ceiling; checks that the storm
ended in exactly one incident per service (by default each fingerprint has its own).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from redis.asyncio import Redis

from services.triage import main as triage
from services.triage.store import Keys
from shared.embedded_redis import EmbeddedRedis
from shared.events import AlertRaised, Event, Level
from shared.runtime import Runtime, Service, build_app, create_runtime
from shared.settings import load_settings
from shared.streams import ALERTS, SEVERITY

__all__ = ["main"]

_CHUNK = 1000
_NOOP_GROUP = "bench-noop"


def _payloads(alerts: int, fingerprints: int, services: int) -> list[str]:
    levels = (Level.LOW, Level.MEDIUM, Level.HIGH)
    return [
        AlertRaised(
            fingerprint=f"bench-fp-{i % fingerprints}",
            service=f"bench-svc-{i % services}",
            check="load",
            summary="queue depth above threshold",
            impact=levels[(i // fingerprints) % 3],
            urgency=Level.LOW,
        ).to_json()
        for i in range(alerts)
    ]


async def _publish(redis: Redis, key: str, payloads: list[str]) -> None:
    for start in range(0, len(payloads), _CHUNK):
        pipe = redis.pipeline(transaction=False)
        for data in payloads[start : start + _CHUNK]:
            pipe.xadd(key, {"__data__": data})
        await pipe.execute()


async def _ceiling(redis: Redis, payloads: list[str]) -> float:
    key, group = "bench:raw", "bench"
    await redis.delete(key)
    await redis.xgroup_create(key, group, id="0", mkstream=True)
    started = time.perf_counter()
    await _publish(redis, key, payloads)
    acked = 0
    while acked < len(payloads):
        res = await redis.xreadgroup(group, "c1", {key: ">"}, count=_CHUNK, block=100)
        if not res:
            continue
        ids = [entry_id for _, entries in res for entry_id, _ in entries]
        pipe = redis.pipeline(transaction=False)
        for start in range(0, len(ids), 500):
            pipe.xack(key, group, *ids[start : start + 500])
        await pipe.execute()
        acked += len(ids)
    elapsed = time.perf_counter() - started
    await redis.delete(key)
    return elapsed


async def _drained(redis: Redis, group: str) -> bool:
    """Everything read and acknowledged. By the last delivered id, not XINFO's `lag`,
    which Redis before 7 does not report (and a missing lag is not a zero one)."""
    last = (await redis.xinfo_stream(ALERTS.key))["last-generated-id"]
    for g in await redis.xinfo_groups(ALERTS.key):
        if g["name"] in (group.encode(), group):
            return int(g["pending"]) == 0 and g["last-delivered-id"] == last
    return False


def _noop(runtime: Runtime) -> Service:
    """The same consumer layer with a handler that does nothing: its own cost."""

    async def handle(event: Event) -> None:
        return None

    return Service(name=_NOOP_GROUP, consumers=[runtime.consume(ALERTS, _NOOP_GROUP, handle)])


async def _hosted(
    url: str, data_dir: Path, payloads: list[str], build: Callable[[Runtime], Service]
) -> float:
    """Host one service as `jarvis-ir serve` does; publish the storm; time until drained."""
    settings = load_settings(
        None,
        redis_url=url,
        data_dir=data_dir,
        consumer={"block_ms": 50, "stream_maxlen": max(200_000, len(payloads) * 2)},
    )
    runtime = create_runtime(settings, url)
    service = build(runtime)
    group = service.consumers[0].group
    app = build_app(runtime, [service])
    redis = Redis.from_url(url)
    try:
        await redis.delete(ALERTS.key)
        async with app.router.lifespan_context(app):
            started = time.perf_counter()
            await _publish(redis, ALERTS.key, payloads)
            while True:
                if await _drained(redis, group):
                    return time.perf_counter() - started
                await asyncio.sleep(0.02)
    finally:
        await redis.aclose()


async def _run(alerts: int, fingerprints: int, services: int, url: str | None) -> int:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="jarvis-bench-") as tmp:
        server = None if url else EmbeddedRedis(Path(tmp))
        url = url or server.start() if server else url
        assert url
        try:
            redis = Redis.from_url(url)
            await redis.flushdb()
            payloads = _payloads(alerts, fingerprints, services)
            raw_s = await _ceiling(redis, payloads)
            noop_s = await _hosted(url, Path(tmp), payloads, _noop)
            triage_s = await _hosted(url, Path(tmp), payloads, triage.build)
            incidents = int(await redis.scard(Keys.OPEN))
            opened = 0
            for _, fields in await redis.xrange(SEVERITY.key):
                opened += b'"previous_severity":null' in fields[b"__data__"]
            await redis.flushdb()
            await redis.aclose()
        finally:
            if server:
                server.stop()
    print(f"alert storm: {alerts} alerts over {fingerprints} fingerprints of {services} services")
    print(f"  raw Redis Streams ceiling : {raw_s:8.2f} s  {alerts / raw_s:10.0f} alerts/s")
    print(f"  consumer layer, no-op     : {noop_s:8.2f} s  {alerts / noop_s:10.0f} alerts/s")
    print(f"  triage                    : {triage_s:8.2f} s  {alerts / triage_s:10.0f} alerts/s")
    print(f"  triage / ceiling          : {raw_s / triage_s:8.1%}")
    print(f"  triage / no-op consumer   : {noop_s / triage_s:8.1%}")
    print(f"  incidents open: {incidents}, opened (SeverityAssigned): {opened}")
    ok = incidents == services and opened == services
    print("  check: " + ("one incident per service" if ok else "UNEXPECTED incident count"))
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.triage_storm", description=__doc__)
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--fingerprints", type=int, default=100)
    parser.add_argument(
        "--services",
        type=int,
        help="services the fingerprints belong to (default: one each); must divide them",
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    args = parser.parse_args(argv)
    services = args.services or args.fingerprints
    if args.fingerprints % services:
        parser.error("--services must divide --fingerprints")
    return asyncio.run(_run(args.alerts, args.fingerprints, services, args.redis_url))


if __name__ == "__main__":
    raise SystemExit(main())
