"""Growth a sender could cause without bound (issue 18, finding 7): triage's per-fingerprint
keys of incidents nobody resolves, the recorder's SQLite write-ahead log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.recorder.main import build as build_recorder
from services.triage.main import build as build_triage
from shared.events import AlertRaised
from shared.settings import Settings
from tests.helpers import eventually, read_stream, running, settled

pytestmark = pytest.mark.integration

FAST = {"stale_after_s": 1.0, "stale_check_s": 0.1, "resolve_check_s": 0.05}


async def test_incidents_whose_senders_fell_silent_are_closed_and_their_keys_freed(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """Each unique fingerprint kept about 1.7 KB in Redis for ever: its incident stayed open
    while nothing resolved its alert."""
    settings = make_settings(triage={**FAST, "playbooks_enabled": False})
    async with running(settings, [build_triage]) as (_, runtime):
        bus = runtime.bus("detector")
        silent = AlertRaised(service="cron-job", check="ran", fingerprint="gone-1")
        alive = AlertRaised(service="batch-job", check="ran", fingerprint="alive-1")
        await bus.publish_many([silent, alive])
        opened = await eventually(lambda: _count(redis, "jarvis:severity", 2))
        ids = {e["fingerprint"]: e["incident_id"] for e in opened}

        async def keep_firing() -> None:  # the other one's sender is still there
            while True:
                await asyncio.sleep(0.2)
                await bus.publish(alive.model_copy(update={"event_id": _new_id()}))

        firing = asyncio.create_task(keep_firing())
        try:
            closed = await eventually(lambda: _resolutions(redis), timeout=5)
            await asyncio.sleep(0.5)  # several checks later, the live one is still open
            assert [c["incident_id"] for c in await _resolutions(redis)] == [ids["gone-1"]]
            assert await redis.get("jarvis:triage:fp:alive-1") is not None
        finally:
            firing.cancel()
    assert "stale" in closed[0]["note"]
    assert closed[0]["automatic"] is True
    assert await redis.get("jarvis:triage:fp:gone-1") is None
    assert await redis.exists(f"jarvis:triage:slots:{ids['gone-1']}") == 0
    assert not await redis.sismember("jarvis:triage:open", ids["gone-1"])


def _new_id() -> str:
    return str(uuid.uuid4())


async def _count(redis: Redis, key: str, n: int) -> list[dict[str, object]]:
    entries = await read_stream(redis, key)
    return entries if len(entries) >= n else []


async def _resolutions(redis: Redis) -> list[dict[str, object]]:
    return [
        e
        for e in await read_stream(redis, "jarvis:incidents")
        if e["event_type"] == "IncidentResolved"
    ]


async def test_the_sqlite_write_ahead_log_shrinks_again(
    redis: Redis, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The SQLite WAL reached 425 MB and never shrank: checkpoints copied it into the
    database but left the file as large as it had grown."""
    database = tmp_path / "recorder.sqlite3"
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{database}",
        recorder={"checkpoint_interval_s": 0.2, "wal_truncate_bytes": 1_048_576},
    )
    wal = Path(f"{database}-wal")
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, _size(wal))
            await asyncio.sleep(0.01)

    async with running(settings, [build_recorder]) as (_, runtime):
        sampler = asyncio.create_task(sample())
        bus = runtime.bus("detector")
        for batch in range(4):
            await bus.publish_many(
                AlertRaised(service=f"s{batch}-{i}", check="c", description="x" * 8000)
                for i in range(500)
            )
        await eventually(lambda: settled(redis, "jarvis:alerts", "recorder"), timeout=60)

        async def small() -> bool:
            return _size(wal) <= 1_048_576

        await eventually(small, timeout=10)
        sampler.cancel()
    assert peak > 2 * 1_048_576  # it did grow: a transaction's pages are all in the log
    assert _size(wal) <= 1_048_576


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0
