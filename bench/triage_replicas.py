"""Benchmark: 1 vs 2 triage replicas on one alert stream (issue 16, scale-out).

    python -m bench.triage_replicas [--alerts 30000] [--fingerprints 3000]

Each replica is its own `jarvis-ir serve triage` process (as `docker compose up --scale
triage=N` runs them), all in one consumer group on one redis-server (embedded, flushed
between runs). The same alerts are XADDed for each run: `--fingerprints` new fingerprints,
each of its own service, each repeated alerts / fingerprints times with a rising severity (so every
alert changes its incident and is committed). The clock stops when the group has
acknowledged the last alert.

Prints, per run: drain time, alerts/s, commit conflicts (the replicas'
`jarvis_triage_commit_conflicts_total`, scraped from their /metrics) per alert; checks
that every run ended in exactly one incident per fingerprint and that conflicts stay
below 5 % of alerts with 2 replicas. On 2 cores the replicas share the CPU with Redis and
the publisher, so the speed-up is bounded by the machine, not by the commits.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import httpx
from redis import Redis

from bench.triage_storm import _payloads as storm_alerts
from services.triage.store import Keys
from shared.cluster import LocalCluster, ServiceProcess, wait_until
from shared.embedded_redis import free_port
from shared.streams import ALERTS, SEVERITY

__all__ = ["main"]

_CHUNK = 1000
_CONFLICTS = re.compile(r"^jarvis_triage_commit_conflicts_total (\S+)$", re.M)
_TARGET = 0.05  # conflicts per alert with 2 replicas


def _drained(redis: Redis) -> bool:
    last = redis.xinfo_stream(ALERTS.key)["last-generated-id"]
    for g in redis.xinfo_groups(ALERTS.key):
        if g["name"] in (b"triage", "triage"):
            return int(g["pending"]) == 0 and g["last-delivered-id"] == last
    return False


def _conflicts(replica: ServiceProcess) -> float:
    text = httpx.get(f"{replica.url}/metrics", timeout=5).text
    found = _CONFLICTS.search(text)
    return float(found.group(1)) if found else 0.0


def _run(cluster: LocalCluster, replicas: int, payloads: list[str]) -> dict[str, float]:
    redis = Redis.from_url(cluster.redis_url)
    redis.flushall()
    procs = []
    try:
        for n in range(replicas):
            proc = ServiceProcess(
                name="triage",
                port=free_port(),
                env={
                    **cluster.env(),
                    "JARVIS_CONSUMER__BLOCK_MS": "50",
                    "JARVIS_CONSUMER__STREAM_MAXLEN": str(max(200_000, 2 * len(payloads))),
                    "JARVIS_TRIAGE__PLAYBOOKS_ENABLED": "false",
                },
                log_path=cluster.workdir / f"triage-{replicas}-{n}.log",
            )
            proc.env["JARVIS_HTTP_PORT"] = str(proc.port)
            proc.start()
            procs.append(proc)
        wait_until(lambda: redis.exists(ALERTS.key), 10, "the triage group created")
        started = time.perf_counter()
        for start in range(0, len(payloads), _CHUNK):
            pipe = redis.pipeline(transaction=False)
            for data in payloads[start : start + _CHUNK]:
                pipe.xadd(ALERTS.key, {"__data__": data})
            pipe.execute()
        wait_until(lambda: _drained(redis), 600, "triage drained the stream")
        elapsed = time.perf_counter() - started
        opened = sum(
            b'"previous_severity":null' in fields[b"__data__"]
            for _, fields in redis.xrange(SEVERITY.key)
        )
        return {
            "seconds": elapsed,
            "conflicts": sum(_conflicts(p) for p in procs),
            "incidents": float(redis.scard(Keys.OPEN)),
            "opened": float(opened),
        }
    finally:
        for proc in procs:
            proc.terminate(timeout_s=15)
        redis.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.triage_replicas", description=__doc__)
    parser.add_argument("--alerts", type=int, default=30_000)
    parser.add_argument("--fingerprints", type=int, default=3_000)
    args = parser.parse_args(argv)
    rounds = max(1, args.alerts // args.fingerprints)
    # Fingerprint k of service k, round r with severity r % 3: the storm's alerts.
    payloads = storm_alerts(rounds * args.fingerprints, args.fingerprints, args.fingerprints)
    alerts = len(payloads)
    with (
        tempfile.TemporaryDirectory(prefix="jarvis-bench-") as tmp,
        LocalCluster(Path(tmp)) as cluster,
    ):
        results = {n: _run(cluster, n, payloads) for n in (1, 2)}
    print(
        f"triage replicas: {alerts} alerts, {args.fingerprints} fingerprints of as many "
        f"services, {rounds} rounds of rising severity; one consumer group"
    )
    ok = True
    for n, r in results.items():
        per_alert = r["conflicts"] / alerts
        rate = alerts / r["seconds"]
        print(
            f"  {n} replica{'s' if n > 1 else ' '}: {r['seconds']:7.2f} s {rate:8.0f} "
            f"alerts/s  conflicts {r['conflicts']:6.0f} ({per_alert:6.2%} of alerts)  "
            f"incidents {r['incidents']:.0f}, opened {r['opened']:.0f}"
        )
        ok &= r["incidents"] == r["opened"] == args.fingerprints
    speedup = results[1]["seconds"] / results[2]["seconds"]
    conflicts = results[2]["conflicts"] / alerts
    print(f"  2 replicas / 1 replica: {speedup:.2f}x")
    print(
        "  check: "
        + ("one incident per fingerprint" if ok else "UNEXPECTED incident count")
        + f"; conflicts per alert with 2 replicas {conflicts:.2%} "
        + ("< 5 %" if conflicts < _TARGET else "ABOVE 5 %")
    )
    return 0 if ok and conflicts < _TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
