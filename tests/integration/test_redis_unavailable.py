"""Redis unavailable, as a failover shows it to a service (issue 16): connections refused,
a demoted master answering READONLY, a promoted replica without the consumer group. Each
is a dependency outage — retried, never counted toward `max_deliveries`, never
dead-lettered — and ingest answers 503 until Redis serves again.

Each test that breaks Redis breaks a private redis-server of its own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError

from services.detector.main import build as build_detector
from shared.embedded_redis import EmbeddedRedis
from shared.events import AlertRaised, Event
from shared.runtime import Runtime, Service
from shared.settings import Settings
from shared.streams import ALERTS, DEAD_LETTER
from tests.helpers import eventually, running

pytestmark = pytest.mark.integration


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "private")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _true(value: bool) -> bool:
    return value


async def test_redis_failing_under_a_handler_is_an_outage_not_a_failure_of_the_entry(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """Four times the dead-letter budget of Redis errors under the handler (refused, then a
    demoted master's READONLY): the entry is handled once Redis serves, no history, no
    dead letter."""
    seen: list[Event] = []
    errors = [RedisConnectionError("Connection refused")] * 4 + [
        ReadOnlyError("You can't write against a read only replica.")
    ] * 4

    def build(runtime: Runtime) -> Service:
        async def handle(event: Event) -> None:
            if errors:
                raise errors.pop()
            seen.append(event)

        return Service(name="outage", consumers=[runtime.consume(ALERTS, "test", handle)])

    settings = make_settings(
        consumer={"max_deliveries": 2, "reclaim_idle_ms": 200, "retry_max_s": 0.2}
    )
    async with running(settings, [build]):
        entry_id = (
            await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="b").to_json()})
        ).decode()
        await eventually(lambda: _true(len(seen) == 1), timeout=20)
        await eventually(lambda: _nothing_pending(redis, "test"))
    assert errors == []
    assert await redis.xlen(DEAD_LETTER) == 0
    assert await redis.llen(f"jarvis:history:test:{ALERTS.key}:{entry_id}") == 0


async def _nothing_pending(redis: Redis, group: str) -> bool:
    return int((await redis.xpending(ALERTS.key, group))["pending"]) == 0


async def test_a_group_missing_on_a_promoted_replica_is_recreated_by_the_reader(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """The stream is there but the group is not (it had not replicated): the reader meets
    NOGROUP, recreates the group from the start of the stream and handles what is in it.
    The periodic group check is pushed out of the way so that the reader is the one."""
    seen: list[str] = []

    def build(runtime: Runtime) -> Service:
        async def handle(event: Event) -> None:
            assert isinstance(event, AlertRaised)
            seen.append(event.service)

        return Service(name="nogroup", consumers=[runtime.consume(ALERTS, "test", handle)])

    settings = make_settings(consumer={"group_check_s": 3600})
    async with running(settings, [build]):
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="before").to_json()})
        await eventually(lambda: _true(seen == ["before"]))
        await redis.xgroup_destroy(ALERTS.key, "test")
        await redis.xadd(ALERTS.key, {"__data__": AlertRaised(service="after").to_json()})
        # Recreated from id 0: "before" comes again (handlers are idempotent), then "after".
        await eventually(lambda: _true("after" in seen), timeout=10)
        groups = {g["name"] for g in await redis.xinfo_groups(ALERTS.key)}
    assert groups == {b"test"}
    assert seen == ["before", "before", "after"]


async def test_ingest_answers_503_while_redis_is_down_or_read_only_then_accepts_again(
    private_redis: EmbeddedRedis,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(redis_url=private_redis.url)
    alert = {"service": "backend", "check": "health", "summary": "down"}
    admin = Redis.from_url(private_redis.url)
    async with running(settings, [build_detector]) as (client, _):
        assert (await client.post("/api/v1/alerts", json=alert)).status_code == 202
        # A demoted master: it answers, but refuses writes.
        await admin.replicaof("127.0.0.1", "1")
        demoted = await client.post("/api/v1/alerts", json=alert)
        assert (demoted.status_code, demoted.headers.get("retry-after")) == (503, "1")
        await admin.replicaof("NO", "ONE")
        assert (await client.post("/api/v1/alerts", json=alert)).status_code == 202
        # Gone altogether.
        private_redis.stop()
        with caplog.at_level(logging.ERROR):
            down = await client.post("/api/v1/alerts", json=alert)
        assert down.status_code == 503, down.text
        assert down.json() == {"detail": "Redis is unavailable; try again"}
        private_redis.start()
        back = await client.post("/api/v1/alerts", json=alert)
        assert back.status_code == 202, back.text
    await admin.aclose()
    assert not [r for r in caplog.records if r.name == "shared.runtime"], "no error logged"


async def test_the_reader_waits_out_a_read_only_server_without_an_error_per_try(
    private_redis: EmbeddedRedis,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Event] = []

    def build(runtime: Runtime) -> Service:
        async def handle(event: Event) -> None:
            seen.append(event)

        return Service(name="ro", consumers=[runtime.consume(ALERTS, "test", handle)])

    admin = Redis.from_url(private_redis.url)
    async with running(make_settings(redis_url=private_redis.url), [build]):
        await admin.xadd(ALERTS.key, {"__data__": AlertRaised(service="a").to_json()})
        await eventually(lambda: _true(len(seen) == 1))
        with caplog.at_level(logging.WARNING, logger="shared.consumer"):
            await admin.replicaof("127.0.0.1", "1")  # XREADGROUP is a write: READONLY
            await eventually(lambda: _true(any("waiting" in r.message for r in caplog.records)))
            await admin.replicaof("NO", "ONE")
            await admin.xadd(ALERTS.key, {"__data__": AlertRaised(service="b").to_json()})
            await eventually(lambda: _true(len(seen) == 2), timeout=15)
    await admin.aclose()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]
