"""`jarvis-ir up` as one process, as `make run` starts it: embedded Redis, SQLite, all five
services, a temp data dir (probes off, so only the benchmark's alerts flow).

20,000 alerts with new fingerprints (50 services, so they join 50 incidents) are XADDed to
`jarvis:alerts` in pipelines of 1,000, the way another system writes the stream; the time
runs until triage and the recorder have read and acknowledged everything (alerts, severity,
incidents). Beside it, the raw Redis Streams ceiling on the same embedded Redis, measured
in the same run, and the process' CPU per alert.

    python -m bench.up                  # 20,000 alerts
    python -m bench.up --alerts 2000    # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx
from redis.asyncio import Redis

from bench._postgres import descendants, stop
from bench.pipeline import _alert, cpu_seconds, raw_ceiling, wait_drained
from shared.cluster import jarvis_ir_command, wait_until
from shared.embedded_redis import free_port

__all__ = ["main", "xadd_alerts"]


async def xadd_alerts(redis: Redis, count: int, run: str, batch: int = 1000) -> None:
    """`count` alerts, each with a new fingerprint, straight onto jarvis:alerts."""
    for start in range(0, count, batch):
        pipe = redis.pipeline(transaction=False)
        for i in range(start, min(start + batch, count)):
            pipe.xadd("jarvis:alerts", {"__data__": json.dumps(_alert(i, run))})
        await pipe.execute()


def _start(workdir: Path) -> tuple[subprocess.Popen[bytes], str, int]:
    """`jarvis-ir up` on free ports; (process, its HTTP URL, its Redis port)."""
    port, redis_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JARVIS_") and k not in ("REDIS_URL", "DATABASE_URL")
    }
    env.update(
        JARVIS_DATA_DIR=str(workdir),
        JARVIS_HTTP_PORT=str(port),
        JARVIS_EMBEDDED_REDIS_PORT=str(redis_port),
        JARVIS_LOG_LEVEL="WARNING",
        JARVIS_DETECTOR__PROBES_ENABLED="false",
    )
    log = (workdir / "up.log").open("ab")
    proc = subprocess.Popen(
        [*jarvis_ir_command(), "up"], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            tail = (workdir / "up.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"jarvis-ir up exited:\n{tail}")
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    wait_until(healthy, 60, "jarvis-ir up answering /health")
    return proc, url, redis_port


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="jarvis-bench-up-"))
    proc, _url, redis_port = _start(workdir)
    try:
        password = (workdir / "secrets" / "redis.password").read_text().strip()
        redis = Redis.from_url(f"redis://:{quote(password, safe='')}@127.0.0.1:{redis_port}/0")
        ceiling = await raw_ceiling(redis, 20_000)
        # Every group exists before the clock starts (the services create them at start).
        await xadd_alerts(redis, 50, "warmup")
        await wait_drained(redis, timeout_s=60)
        pids = descendants(proc.pid)  # the process and its embedded Redis
        cpu0 = sum(cpu_seconds(pid) for pid in pids)
        started = time.perf_counter()
        await xadd_alerts(redis, args.alerts, uuid.uuid4().hex[:8])
        await wait_drained(redis, timeout_s=600)
        elapsed = time.perf_counter() - started
        cpu = sum(cpu_seconds(pid) for pid in pids) - cpu0
        await redis.aclose()
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)
    rate = args.alerts / elapsed
    print(f"\nraw Redis Streams ceiling (XADD+XREADGROUP+XACK, batches of 100): {ceiling:,.0f}/s")
    print(
        f"  jarvis-ir up (one process, embedded Redis + SQLite): {args.alerts:,} new "
        f"fingerprints drained by triage and the recorder in {elapsed:.1f} s; "
        f"CPU (process + its Redis) {cpu / args.alerts * 1e6:,.0f} µs/alert "
        f"({cpu / elapsed:.2f} cores)"
    )
    print(
        f"RESULT jarvis-ir up: {rate:,.0f} unique alerts/s = {rate / ceiling:.3f} of the raw "
        f"ceiling {ceiling:,.0f}/s (target >= 4,000/s)"
    )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.up", description=__doc__)
    parser.add_argument("--alerts", type=int, default=20_000, help="alerts to XADD")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
