"""Triage's own CPU per alert, in one process and without the other services competing:
alerts decoded as the consumer decodes them, handed to `Triage.on_alerts` in batches of
100 (what the consumer hands it under load), on a throw-away redis-server.

Beside it, measured in the same run: decoding alone (what every reader of jarvis:alerts
pays), and Redis' CPU for triage's scripts. Less noisy than `bench.pipeline` on a shared
machine, which measures the same handler among three busy processes.

    python -m bench.triage_cpu              # 20,000 unique alerts over 50 services
    python -m bench.triage_cpu --storm      # 100 fingerprints repeated (duplicate-heavy)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.pipeline import cpu_seconds
from services.triage.main import Triage
from services.triage.silencing import Silencing
from services.triage.store import TriageStore
from shared.consumer import decode_entry
from shared.embedded_redis import EmbeddedRedis
from shared.envelope import AlertAdmission
from shared.events import Event
from shared.keys import Signer
from shared.settings import load_settings
from shared.streams import ALERTS

__all__ = ["main"]

_BATCH = 100


def _entries(start: int, run: str, storm: bool) -> list[tuple[str, dict[bytes, bytes]]]:
    """One batch of stream entries, as `bench.pipeline` sends them."""
    out = []
    for i in range(start, start + _BATCH):
        alert: dict[str, Any] = {
            "service": f"bench-{run}-svc{i % 50}",
            "check": f"bench-{run}-{i}",
            "summary": "benchmark alert",
            "impact": "medium",
            "urgency": "low",
        }
        if storm:  # one service per fingerprint, as bench.pipeline's storm
            alert.update(service=f"storm-{run}-{i % 100}", check="storm")
        out.append((f"{1_700_000_000_000 + i}-0", {b"__data__": json.dumps(alert).encode()}))
    return out


def _decode(entries: list[tuple[str, dict[bytes, bytes]]]) -> list[Event]:
    return [decode_entry(fields, ALERTS, entry_id) for entry_id, fields in entries]


async def measure(count: int, storm: bool) -> dict[str, float]:
    """µs per alert: triage (decoding included), decoding alone, Redis."""
    workdir = Path(tempfile.mkdtemp(prefix="jarvis-triage-cpu-"))
    server = EmbeddedRedis(workdir)
    url = server.start()
    try:
        redis = Redis.from_url(url)
        settings = load_settings(None, redis_url=url, data_dir=workdir / "var")
        seal = AlertAdmission(Signer("bench")).seal
        triage = Triage(
            settings.triage, TriageStore(redis), lambda: datetime.now(UTC), Silencing(redis, seal)
        )
        run = uuid.uuid4().hex[:8]
        await triage.on_alerts(_decode(_entries(0, f"warm{run}", storm)))  # scripts loaded
        decode_run = uuid.uuid4().hex[:8]
        started = time.process_time()
        for start in range(0, count, _BATCH):
            _decode(_entries(start, decode_run, storm))
        decoding = time.process_time() - started
        started, redis_started = time.process_time(), cpu_seconds(server.pid)
        for start in range(0, count, _BATCH):
            await triage.on_alerts(_decode(_entries(start, run, storm)))
        used, redis_used = time.process_time() - started, cpu_seconds(server.pid) - redis_started
        await redis.aclose()
    finally:
        server.stop()
    return {"triage": used, "decoding": decoding, "redis": redis_used}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.triage_cpu", description=__doc__)
    parser.add_argument("--alerts", type=int, default=20_000, help="alerts (20,000)")
    parser.add_argument("--storm", action="store_true", help="100 fingerprints repeated")
    args = parser.parse_args(argv)
    count = args.alerts // _BATCH * _BATCH
    used = asyncio.run(measure(count, args.storm))
    per = {name: seconds / count * 1e6 for name, seconds in used.items()}
    kind = "storm (100 fingerprints)" if args.storm else "unique alerts over 50 services"
    print(
        f"RESULT triage CPU, {count:,} {kind}, batches of {_BATCH}: {per['triage']:.0f} µs/alert "
        f"(decoding alone {per['decoding']:.0f} µs/alert of it, measured in the same run); "
        f"Redis {per['redis']:.0f} µs/alert"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
