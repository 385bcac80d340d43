"""PostgreSQL, Redis and host probes against the real servers and the real host."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from services.detector.probes import Schedule
from services.detector.probes_infra import HostProbe, PostgresProbe, RedisProbe, asyncpg_dsn
from tests.integration.detector_stubs import free_port

pytestmark = pytest.mark.integration

FAST = Schedule(interval_s=1, timeout_s=2)


def test_sqlalchemy_urls_become_asyncpg_dsns() -> None:
    assert asyncpg_dsn("postgresql+asyncpg://u@h:1/db") == "postgresql://u@h:1/db"
    assert asyncpg_dsn("postgresql://u@h:1/db") == "postgresql://u@h:1/db"


@pytest.mark.postgres
async def test_postgres_connect_and_connections(postgres_url: str) -> None:
    healthy = PostgresProbe(postgres_url, 80.0, FAST)
    connect, connections = (await healthy.run()).results
    assert (connect.service, connect.check, connect.ok) == ("postgres", "connect", True)
    assert connections.check == "connections"
    assert connections.ok
    assert connections.value is not None
    assert 0 < connections.value < 80
    # A threshold below what one connection uses shows the comparison really happens.
    crowded = PostgresProbe(postgres_url, 0.01, FAST)
    _, connections = (await crowded.run()).results
    assert not connections.ok
    assert "connections in use" in connections.detail


@pytest.mark.postgres
async def test_postgres_unreachable_and_wrong_database(postgres_url: str) -> None:
    down = PostgresProbe(f"postgresql://sutazai@127.0.0.1:{free_port()}/sutazai", 80, FAST)
    [result] = (await down.run()).results
    assert (result.check, result.ok) == ("connect", False)
    assert result.detail.startswith("cannot connect")
    missing = PostgresProbe(postgres_url.rsplit("/", 1)[0] + "/no_such_db_for_probe", 80, FAST)
    [result] = (await missing.run()).results
    assert not result.ok
    assert "no_such_db_for_probe" in result.detail


async def test_redis_ping_and_memory(redis: Redis, redis_url: str) -> None:
    probe = RedisProbe(redis_url, 80.0, FAST)
    try:
        ping, memory = (await probe.run()).results
        assert (ping.check, ping.ok) == ("ping", True)
        assert (memory.ok, memory.detail) == (True, "no maxmemory set")
        await redis.config_set("maxmemory", str(1024**3))
        strict = RedisProbe(redis_url, 0.001, FAST)
        try:
            _, memory = (await strict.run()).results
        finally:
            await strict.close()
        assert (memory.check, memory.ok) == ("memory", False)
        assert memory.value is not None
        assert memory.value > 0.001
        assert "maxmemory 1073741824" in memory.detail
    finally:
        await redis.config_set("maxmemory", "0")
        await probe.close()


async def test_redis_unreachable() -> None:
    probe = RedisProbe(f"redis://127.0.0.1:{free_port()}/0", 80.0, FAST)
    [result] = (await probe.run()).results
    assert (result.service, result.check, result.ok) == ("redis", "ping", False)
    assert result.detail.startswith("no PONG")
    await probe.close()


async def test_host_disk_memory_cpu() -> None:
    relaxed = HostProbe("/", 100.0, 100.0, 100.0, FAST)
    results = {r.check: r for r in (await relaxed.run()).results}
    assert set(results) == {"disk", "memory", "cpu"}
    assert results["disk"].ok
    assert results["memory"].ok
    for result in results.values():
        assert result.value is not None
        assert 0 <= result.value <= 100
    strict = HostProbe("/", 0.001, 0.001, 100.0, FAST)
    results = {r.check: r for r in (await strict.run()).results}
    assert not results["disk"].ok
    assert not results["memory"].ok
    assert "threshold 0.001%" in results["disk"].detail
