"""HTTP ingest beside a real peer: our detector's `POST /api/v1/alerts` against Alertmanager's
`POST /api/v2/alerts`, both as their own processes on this machine.

The same httpx AsyncClient posts the same alerts (unique label sets, so neither side can
merge them) to both, 8 requests in flight, first one alert per request, then 100. Each
phase runs for a fixed time after a short warm-up; the table gives requests/s, alerts/s,
CPU µs per alert of the server process(es), and our ratio to Alertmanager measured in the
same run. Alertmanager is Debian's `prometheus-alertmanager` (0.25), clustering off, its
storage in a temp dir; our detector runs as `jarvis-ir serve detector` on its own Redis.

    python -m bench.ingest                  # about 40 s
    python -m bench.ingest --seconds 1      # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench._postgres import stop
from bench.pipeline import cpu_seconds
from shared.cluster import LocalCluster, wait_until
from shared.embedded_redis import free_port

__all__ = ["ALERTMANAGER", "Alertmanager", "Phase", "main"]

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
IN_FLIGHT = 8
Maker = Callable[[int, int], list[dict[str, Any]]]  # (first index, count) → request body
# One receiver that sends nowhere: Alertmanager stores, dedups and groups, and notifies no one.
_CONFIG = """\
route:
  receiver: "null"
  group_by: ["alertname"]
receivers:
  - name: "null"
"""


class Alertmanager:
    """A throw-away Alertmanager on a free loopback port, clustering off."""

    def __init__(self, workdir: Path, binary: str = ALERTMANAGER) -> None:
        self.workdir = workdir
        self.binary = binary
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Alertmanager:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(_CONFIG)
        log = (self.workdir / "alertmanager.log").open("ab")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",  # empty: no gossip, no other port
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited: {self.log_tail()}")
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, "alertmanager ready")
        return self

    def log_tail(self) -> str:
        return (self.workdir / "alertmanager.log").read_text(errors="replace")[-2000:]

    def __exit__(self, *_: object) -> None:
        stop(self.proc, timeout_s=10)


def _ours(run: str, i: int) -> dict[str, Any]:
    return {
        "service": f"ingest-{run}-svc{i % 50}",
        "check": "bench_ingest",
        "summary": "benchmark alert",
        "labels": {"instance": f"host-{i}"},
    }


def _theirs(run: str, i: int, now: str, ends: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": "bench_ingest",
            "service": f"ingest-{run}-svc{i % 50}",
            "instance": f"host-{i}",
        },
        "annotations": {"summary": "benchmark alert"},
        "startsAt": now,
        "endsAt": ends,
    }


@dataclass
class Phase:
    """One measured phase: which server, alerts per request, what was done."""

    target: str
    per_request: int
    requests: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0

    @property
    def alerts(self) -> int:
        return self.requests * self.per_request

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def alerts_per_s(self) -> float:
        return self.alerts / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_alert(self) -> float:
        return self.cpu_s / self.alerts * 1e6 if self.alerts else 0.0


async def drive(
    client: httpx.AsyncClient,
    urls: list[str],
    body: Callable[[int], list[dict[str, Any]]],
    per_request: int,
    seconds: float,
    start: int = 0,
) -> tuple[int, float, int]:
    """POST for `seconds` with IN_FLIGHT requests in flight; (requests, elapsed, next index).
    With several `urls` (replicas), each of the IN_FLIGHT workers keeps to one of them, as
    a connection-balancing proxy would. Every answer must be 2xx: a refused alert is a
    failed benchmark, not a fast one."""
    counter = start
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(url: str) -> None:
        nonlocal counter, done
        while time.perf_counter() < deadline:
            first = counter
            counter += per_request
            resp = await client.post(url, json=body(first))
            if resp.status_code // 100 != 2:
                raise RuntimeError(f"{url}: {resp.status_code} {resp.text[:300]}")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(urls[k % len(urls)]) for k in range(IN_FLIGHT)))
    return done, time.perf_counter() - started, counter


async def measure(
    targets: dict[str, tuple[list[str], Maker, list[int]]],
    sizes: tuple[int, ...],
    seconds: float,
    warmup: float,
) -> list[Phase]:
    """Each target at each batch size, in turn, with one client."""
    phases: list[Phase] = []
    limits = httpx.Limits(max_connections=IN_FLIGHT, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        index = 0
        for size in sizes:
            for name, (urls, make, pids) in targets.items():

                def body(first: int, make: Maker = make, size: int = size) -> list[dict[str, Any]]:
                    return make(first, size)

                _, _, index = await drive(client, urls, body, size, warmup, index)
                before = sum(cpu_seconds(pid) for pid in pids)
                requests, elapsed, index = await drive(client, urls, body, size, seconds, index)
                used = sum(cpu_seconds(pid) for pid in pids) - before
                phases.append(Phase(name, size, requests, elapsed, used))
    return phases


def report(phases: list[Phase]) -> list[str]:
    """The table, one line per phase, and the ratio lines the README copies."""
    lines = [
        f"  {'server':<14} {'alerts/req':>10} {'requests/s':>11} {'alerts/s':>10} "
        f"{'CPU µs/alert':>13}"
    ]
    for p in phases:
        lines.append(
            f"  {p.target:<14} {p.per_request:>10} {p.requests_per_s:>11,.0f} "
            f"{p.alerts_per_s:>10,.0f} {p.cpu_us_per_alert:>13,.0f}"
        )
    by = {(p.target, p.per_request): p for p in phases}
    ours_names = [
        name for name in dict.fromkeys(p.target for p in phases) if name != "alertmanager"
    ]
    for size in sorted({p.per_request for p in phases}):
        theirs = by.get(("alertmanager", size))
        for name in ours_names:
            ours = by.get((name, size))
            if ours and theirs and theirs.alerts_per_s:
                lines.append(
                    f"RESULT ingest {size} alert(s)/request, {IN_FLIGHT} in flight: {name} "
                    f"{ours.alerts_per_s:,.0f} alerts/s, alertmanager "
                    f"{theirs.alerts_per_s:,.0f} alerts/s, ratio "
                    f"{ours.alerts_per_s / theirs.alerts_per_s:.2f}x (target >= 1.0x)"
                )
    return lines


async def run(args: argparse.Namespace, binary: str) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="jarvis-bench-ingest-"))
    run_id = uuid.uuid4().hex[:8]
    try:
        with (
            Alertmanager(workdir / "alertmanager", binary) as am,
            LocalCluster(workdir / "jarvis") as cluster,
        ):
            env = {
                "JARVIS_DETECTOR__PROBES_ENABLED": "false",
                "JARVIS_DETECTOR__MAX_UNKNOWN_SERVICES": "1000000",
            }
            detectors = [
                cluster.add("detector", key=f"detector-{n}", **env) for n in range(args.replicas)
            ]
            assert cluster.redis is not None
            now = datetime.now(UTC)
            stamp, ends = now.isoformat(), (now + timedelta(hours=1)).isoformat()

            def ours(first: int, size: int) -> list[dict[str, Any]]:
                return [_ours(run_id, i) for i in range(first, first + size)]

            def theirs(first: int, size: int) -> list[dict[str, Any]]:
                return [_theirs(run_id, i, stamp, ends) for i in range(first, first + size)]

            redis_pid = cluster.redis.pid
            targets: dict[str, tuple[list[str], Maker, list[int]]] = {
                "alertmanager": ([f"{am.url}/api/v2/alerts"], theirs, [am.pid]),
                "jarvis": (
                    [f"{detectors[0].url}/api/v1/alerts"],
                    ours,
                    [detectors[0].pid, redis_pid],
                ),
            }
            if len(detectors) > 1:
                # Replicas are active-active for ingest (services/detector/lease.py): the
                # same Redis behind N detector processes, as a proxy would spread them.
                targets[f"jarvis x{len(detectors)}"] = (
                    [f"{d.url}/api/v1/alerts" for d in detectors],
                    ours,
                    [*(d.pid for d in detectors), redis_pid],
                )
            phases = await measure(targets, tuple(args.sizes), args.seconds, args.warmup)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"\nHTTP ingest, {IN_FLIGHT} in flight, {args.seconds:g} s per phase "
        "(CPU: the server process; jarvis includes its Redis)"
    )
    for line in report(phases):
        print(line)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured time per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per phase")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100], help="alerts/request")
    parser.add_argument("--alertmanager", default=ALERTMANAGER, help="Alertmanager binary")
    parser.add_argument(
        "--replicas",
        type=int,
        default=2,
        help="also measure this many detector replicas on one Redis (Alertmanager, a Go "
        "program, uses every core; one detector process uses one); 1: only one",
    )
    args = parser.parse_args(argv)
    binary = shutil.which(args.alertmanager) or args.alertmanager
    if not Path(binary).exists():
        print(f"Alertmanager not found at {binary}: apt-get install prometheus-alertmanager")
        return 1
    return asyncio.run(run(args, binary))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
