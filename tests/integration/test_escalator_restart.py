"""`kill -9` the escalator while timers are pending, restart it (as two replicas): each
timer fires exactly once, late by at most one tick.

The escalator runs as users run it, `python -m services.cli serve escalator` (what the
`jarvis-ir serve escalator` entry point calls), against the test Redis, with the matrix
configured in seconds through the environment so real time drives it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.escalator.store import DUE_KEY
from shared.bus import EventBus
from shared.events import Severity
from tests.integration._escalator_support import escalations_of, severity_event

pytestmark = pytest.mark.integration

TICK_S = 0.2
# P0 in seconds: L2 at 3 s, L3 at 7 s, L4 at 9 s, executive at 14 s.
MATRIX_P0 = "3s=2, 7s=3, 9s=4, 14s=executive"
DUE_S = {2: 3.0, 3: 7.0, 4: 9.0, 5: 14.0}
SLACK_S = 0.5  # scheduling noise on a busy two-core machine, on top of one tick


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Escalator:
    """One `serve escalator` process."""

    def __init__(self, redis_url: str, log: Path) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "JARVIS_HTTP_PORT": str(self.port),
            "JARVIS_LOG_LEVEL": "WARNING",
            "JARVIS_ESCALATOR__TICK_S": str(TICK_S),
            "JARVIS_ESCALATOR__MATRIX__P0": MATRIX_P0,
            "JARVIS_CONSUMER__BLOCK_MS": "100",
            "JARVIS_CONSUMER__RECLAIM_IDLE_MS": "1000",
        }
        env.pop("JARVIS_CONFIG", None)
        self._log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "serve", "escalator"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self, timeout: float = 20.0) -> float:
        """Wait for /health; return when it answered (the tick loop runs by then)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, "escalator exited during start"
                try:
                    response = await client.get(f"http://127.0.0.1:{self.port}/health")
                    if response.status_code == 200:
                        return time.time()
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        pytest.fail("escalator did not become ready")

    def kill9(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextmanager
def processes() -> Iterator[list[Escalator]]:
    started: list[Escalator] = []
    try:
        yield started
    finally:
        for p in started:
            p.stop()


async def _wait_for(redis: Redis, incident: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(await escalations_of(redis, incident)) < n:
        if time.monotonic() > deadline:
            pytest.fail(f"{n} escalations expected, got {await escalations_of(redis, incident)}")
        await asyncio.sleep(0.05)


async def test_kill_9_and_restart_fires_each_timer_exactly_once(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    incident = f"kill9-{uuid.uuid4().hex[:10]}"
    log = tmp_path / "escalator.log"
    with processes() as running:
        first = Escalator(redis_url, log)
        running.append(first)
        await first.ready()

        opened = datetime.now(UTC)
        await EventBus(redis, producer="test").publish(
            severity_event(incident, Severity.P0, opened)
        )
        await _wait_for(redis, incident, 1, timeout=10)  # L2 at 3 s
        first.kill9()  # L3, L4 and the executive step are pending in Redis
        assert await redis.zcard(DUE_KEY) == 3

        # Stay down past the L3 (7 s) and L4 (9 s) thresholds.
        await asyncio.sleep(
            max(0.0, (opened + timedelta(seconds=10) - datetime.now(UTC)).total_seconds())
        )
        assert len(await escalations_of(redis, incident)) == 1

        # Restart as two replicas at once.
        replicas = [Escalator(redis_url, log), Escalator(redis_url, log)]
        running.extend(replicas)
        ready_at = min(await asyncio.gather(*(r.ready() for r in replicas)))
        await _wait_for(redis, incident, 4, timeout=15)  # executive at 14 s
        await asyncio.sleep(1.0)  # room for a duplicate to show up

    events = await escalations_of(redis, incident)
    assert [e["level"] for e in events] == [2, 3, 4, 5], log.read_text()[-3000:]
    assert len({e["step"] for e in events}) == 4
    late = {
        e["level"]: datetime.fromisoformat(e["occurred_at"]).timestamp()
        - (opened.timestamp() + DUE_S[e["level"]])
        for e in events
    }
    # Fired while running: at most one tick late.
    assert 0 <= late[2] <= TICK_S + SLACK_S, late
    assert 0 <= late[5] <= TICK_S + SLACK_S, late
    # Due while the escalator was dead: fired on the first tick after the restart.
    for level in (3, 4):
        fired_at = opened.timestamp() + DUE_S[level] + late[level]
        assert fired_at <= ready_at + TICK_S + SLACK_S, (level, late, ready_at)
    assert await redis.zcard(DUE_KEY) == 0
