"""Benchmark of the detector's probe loop: 1,000 HTTP targets at a 5 s interval.

    python -m bench.detector_probes [--targets 1000] [--cycles 3]

A stand-in HTTP server (raw asyncio, in a child process so its CPU is not counted) serves
every target on 127.0.0.1; an embedded redis-server takes the alerts. Reported:

- CPU of the detector process per probe cycle, as seconds and as a fraction of one core,
  next to the baseline measured in the same run: the CPU of 1,000 bare httpx GETs made
  one after another on a warm keep-alive connection;
- detection latency: from the moment targets start failing (HTTP 500, and hanging past the
  timeout) to their AlertRaised on jarvis:alerts, against the target "one interval plus
  the timeout"; and the recovery latency to the resolved alert.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from services.detector.main import build
from shared.embedded_redis import EmbeddedRedis, free_port
from shared.runtime import create_runtime
from shared.settings import load_settings

BUILTIN = (
    "backend",
    "ollama",
    "postgres",
    "redis",
    "docker",
    "logs",
    "host",
    "prometheus",
    "grafana",
)


# --- the stand-in: one small HTTP/1.1 server for every target --------------------------------


def _serve(port: int) -> None:
    failing: dict[str, str] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                target = line.split(b" ", 2)[1].decode()
                while await reader.readline() not in (b"\r\n", b""):
                    pass
                path, _, query = target.partition("?")
                status = b"200 OK"
                if path == "/control":
                    params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                    failing.clear()
                    for name in filter(None, params.get("error", "").split(",")):
                        failing[f"/t/{name}"] = "error"
                    for name in filter(None, params.get("hang", "").split(",")):
                        failing[f"/t/{name}"] = "hang"
                else:
                    mode = failing.get(path)
                    if mode == "hang":
                        await asyncio.sleep(60)
                    elif mode == "error":
                        status = b"500 Internal Server Error"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=2048)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- measurements ------------------------------------------------------------------------------


async def _bare_gets(base: str, n: int) -> float:
    """CPU seconds of `n` plain httpx GETs, one after another on a warm keep-alive
    connection: the cheapest a full HTTP client does the work of one probe cycle."""
    async with httpx.AsyncClient() as client:
        await client.get(f"{base}/t/warm-up")
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            for i in range(n):
                answer = await client.get(f"{base}/t/{i}")
                assert answer.status_code == 200
            best = min(best, time.process_time() - started)
    return best


async def _wait_alerts(
    redis: Redis, since_id: str, names: set[str], status: str, deadline_s: float
) -> dict[str, float]:
    """Time (s since epoch, from the entry id) each named target's alert reached the stream."""
    seen: dict[str, float] = {}
    last = since_id
    end = time.monotonic() + deadline_s
    while names - seen.keys() and time.monotonic() < end:
        for entry_id, fields in await redis.xrange("jarvis:alerts", f"({last}", "+"):
            last = entry_id.decode()
            alert = json.loads(fields[b"__data__"])
            target = alert["labels"].get("target")
            if alert["status"] == status and target in names and target not in seen:
                seen[target] = int(last.split("-")[0]) / 1000
        await asyncio.sleep(0.05)
    return seen


def _summary(latencies: list[float]) -> str:
    if not latencies:
        return "none detected"
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return (
        f"p50 {statistics.median(ordered):.2f} s, p95 {p95:.2f} s, max {ordered[-1]:.2f} s"
        f" ({len(ordered)} targets)"
    )


async def _control(base: str, **modes: list[int]) -> float:
    query = "&".join(f"{k}={','.join(f'target-{i}' for i in v)}" for k, v in modes.items())
    async with httpx.AsyncClient() as client:
        await client.get(f"{base}/control?{query}")
    return time.time()


async def run(
    targets: int,
    cycles: int,
    interval: float,
    limit_s: float,
    failing: int,
    fire_after: int | None = None,
) -> None:
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,), daemon=True)
    server.start()
    base = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="jarvis-bench-detector-"))
    embedded = EmbeddedRedis(tmp)
    redis_url = embedded.start()
    try:
        async with httpx.AsyncClient() as probe_client:
            for _ in range(200):
                try:
                    await probe_client.get(f"{base}/control")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.05)
        detector: dict[str, Any] = {name: {"enabled": False} for name in BUILTIN}
        if fire_after:
            detector["fire_after"] = fire_after
        detector.update(
            probe_interval_s=interval,
            probe_timeout_s=limit_s,
            http_targets=[
                {"name": f"target-{i}", "url": f"{base}/t/target-{i}", "service": "bench"}
                for i in range(targets)
            ],
        )
        settings = load_settings(None, redis_url=redis_url, detector=detector)
        d = settings.detector
        runtime = create_runtime(settings, redis_url)
        service = build(runtime)
        print(
            f"detector: {targets} HTTP targets, interval {interval:g} s, timeout {limit_s:g} s,"
            f" fire_after {d.fire_after}, resolve_after {d.resolve_after},"
            f" retry {d.retry_interval_s:g} s"
        )
        baseline = await _bare_gets(base, targets)
        loop_task = asyncio.create_task(service.background[0]())
        await asyncio.sleep(interval * 1.2)  # every target probed once, connections warm
        wall0, cpu0 = time.monotonic(), time.process_time()
        await asyncio.sleep(interval * cycles)
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        per_cycle = cpu / (wall / interval)
        print(f"baseline: {targets} bare httpx GETs (keep-alive)  {baseline:.3f} s CPU")
        print(
            f"probe cycle: {per_cycle:.3f} s CPU per {interval:g} s cycle"
            f" = {cpu / wall:.1%} of one core  (target < 50%)"
        )
        print(f"ratio cycle / baseline: {per_cycle / baseline:.2f}x")

        bound = interval + limit_s
        half = failing // 2
        errors, hangs = list(range(half)), list(range(half, failing))
        start_id = (
            (await runtime.redis.xinfo_stream("jarvis:alerts"))["last-generated-id"]
            if await runtime.redis.exists("jarvis:alerts")
            else "0-0"
        )
        start_id = start_id.decode() if isinstance(start_id, bytes) else str(start_id)
        t0 = await _control(base, error=errors, hang=hangs)
        names = {f"target-{i}" for i in errors + hangs}
        fired = await _wait_alerts(runtime.redis, start_id, names, "firing", bound * 3)
        err_lat = [fired[f"target-{i}"] - t0 for i in errors if f"target-{i}" in fired]
        hang_lat = [fired[f"target-{i}"] - t0 for i in hangs if f"target-{i}" in fired]
        print(f"detection, HTTP 500:        {_summary(err_lat)}  (target <= {bound:g} s)")
        print(f"detection, hang > timeout:  {_summary(hang_lat)}  (target <= {bound:g} s)")
        missed = len(names) - len(fired)
        if missed:
            print(f"NOT DETECTED within {bound * 3:g} s: {missed} targets")
        last_id = (await runtime.redis.xinfo_stream("jarvis:alerts"))["last-generated-id"]
        last_id = last_id.decode() if isinstance(last_id, bytes) else str(last_id)
        t1 = await _control(base)
        healed = await _wait_alerts(runtime.redis, last_id, names, "resolved", bound * 3)
        print(f"recovery → resolved:        {_summary([t - t1 for t in healed.values()])}")
        within = sum(1 for x in err_lat + hang_lat if x <= bound)
        print(f"detected within interval + timeout: {within}/{len(names)}")
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        for hook in service.shutdown:
            await hook()
        await runtime.redis.aclose()
    finally:
        server.kill()
        embedded.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=3, help="probe cycles measured for CPU")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--failing", type=int, default=40, help="targets made to fail")
    parser.add_argument("--fire-after", type=int, default=None, help="failures before firing")
    args = parser.parse_args()
    asyncio.run(
        run(args.targets, args.cycles, args.interval, args.timeout, args.failing, args.fire_after)
    )


if __name__ == "__main__":
    main()
