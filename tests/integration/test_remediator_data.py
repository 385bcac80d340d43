"""Data protection, models and checks against the real things: pg_dump against the real
PostgreSQL (restored into a fresh database), BGSAVE/FLUSHDB against real Redis, a pull
against a loopback stand-in of Ollama's API, runbook Phase 6 checks and Phase 4 evidence."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from redis.asyncio import Redis

from services.remediator.diagnostics import Diagnostics
from services.remediator.docker_engine import DockerEngine
from services.remediator.ollama import OllamaClient
from services.remediator.ports import ActionFailed
from services.remediator.postgres import PostgresOps, find_pg_dump, plain_dsn
from services.remediator.redis_ops import RedisOps
from services.remediator.verification import Verifier
from shared.settings import (
    RemediatorPostgresTarget,
    RemediatorRedisTarget,
    RemediatorSettings,
    Settings,
)
from tests.integration.remediator_fixtures import (  # noqa: F401 - fixtures
    Containers,
    StandIn,
    containers_fixture,
    docker_client_fixture,
)

pytestmark = pytest.mark.integration

TARGET_DB = 9  # the Jarvis Redis stand-in: a database of the test Redis the bus does not use


@pytest.fixture
async def source_db(postgres_url: str) -> AsyncIterator[str]:
    """A fresh database with a little data, as `postgresql://` DSN."""
    admin_dsn, _ = plain_dsn(postgres_url)
    name = f"t5_src_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    conn = await asyncpg.connect(dsn)
    await conn.execute("CREATE TABLE incidents (id serial PRIMARY KEY, title text NOT NULL)")
    await conn.executemany(
        "INSERT INTO incidents (title) VALUES ($1)", [("backend down",), ("ollama slow",)]
    )
    await conn.close()
    yield dsn
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def _pg_settings(dsn: str) -> RemediatorSettings:
    return RemediatorSettings(postgres_targets={"jarvis-pg": RemediatorPostgresTarget(dsn=dsn)})


@pytest.mark.postgres
async def test_pg_dump_file_restores_into_a_fresh_database(source_db: str, tmp_path: Path) -> None:
    ops = PostgresOps(_pg_settings(source_db), DockerEngine())
    dump = await ops.backup("jarvis-pg", tmp_path / "emergency_backup.sql", timeout_s=60)
    assert "CREATE TABLE public.incidents" in dump.read_text()
    assert dump.stat().st_mode & 0o777 == 0o600  # issue 18: the whole database, owner only

    restored = source_db + "_r"
    admin = await asyncpg.connect(source_db.rsplit("/", 1)[0] + "/postgres")
    await admin.execute(f'CREATE DATABASE "{restored.rsplit("/", 1)[1]}"')
    try:
        psql = str(Path(find_pg_dump(None)).with_name("psql"))
        subprocess.run(  # noqa: ASYNC221 - a test step; nothing else runs meanwhile
            [psql, "-v", "ON_ERROR_STOP=1", "-q", "-d", restored, "-f", str(dump)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        conn = await asyncpg.connect(restored)
        rows = await conn.fetch("SELECT title FROM incidents ORDER BY id")
        await conn.close()
        assert [r["title"] for r in rows] == ["backend down", "ollama slow"]
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{restored.rsplit("/", 1)[1]}" WITH (FORCE)')
        await admin.close()


@pytest.mark.postgres
async def test_wait_ready_connections_and_select_one(source_db: str) -> None:
    ops = PostgresOps(_pg_settings(source_db), DockerEngine())
    assert await ops.wait_ready("jarvis-pg", timeout_s=10) < 10
    assert await ops.connections("jarvis-pg") >= 1
    assert await ops.select_one("jarvis-pg") == "Database OK"


async def test_wait_ready_times_out_on_a_dead_server() -> None:
    settings = _pg_settings("postgresql://nobody@127.0.0.1:1/none")
    ops = PostgresOps(settings, DockerEngine())
    with pytest.raises(ActionFailed, match="not ready within 3 s"):
        await ops.wait_ready("jarvis-pg", timeout_s=3)


@pytest.mark.postgres
async def test_pg_dump_failure_leaves_no_file(postgres_url: str, tmp_path: Path) -> None:
    missing = plain_dsn(postgres_url)[0].rsplit("/", 1)[0] + "/no_such_db_t5"
    ops = PostgresOps(_pg_settings(missing), DockerEngine())
    with pytest.raises(ActionFailed, match="pg_dump exited"):
        await ops.backup("jarvis-pg", tmp_path / "x.sql", timeout_s=30)
    assert list(tmp_path.iterdir()) == []  # noqa: ASYNC240 - test inspection


def _redis_settings(redis_url: str) -> RemediatorSettings:
    url = redis_url.rsplit("/", 1)[0] + f"/{TARGET_DB}"
    return RemediatorSettings(redis_targets={"jarvis-redis": RemediatorRedisTarget(url=url)})


async def test_bgsave_waits_until_lastsave_advances(redis_url: str) -> None:
    ops = RedisOps(_redis_settings(redis_url))
    client = Redis.from_url(redis_url)
    await client.bgsave()  # a save right before ours: the same-second case
    before_ours = int((await client.lastsave()).timestamp())
    before, after = await ops.bgsave("jarvis-redis", timeout_s=30)
    assert after > before >= before_ours - 1
    assert int((await client.lastsave()).timestamp()) == after
    await client.aclose()


async def test_flushdb_and_ping(redis_url: str) -> None:
    ops = RedisOps(_redis_settings(redis_url))
    target = Redis.from_url(redis_url.rsplit("/", 1)[0] + f"/{TARGET_DB}")
    bus = Redis.from_url(redis_url)
    await target.set("cache:a", "1")
    await target.set("cache:b", "2")
    await bus.set("jarvis:keep", "1")
    assert await ops.flushdb("jarvis-redis") == 2
    assert await target.dbsize() == 0
    assert await bus.get("jarvis:keep") == b"1"
    assert await ops.ping("jarvis-redis") is True
    await target.aclose()
    await bus.aclose()


def _ollama_stand_in(delay_listing: int = 2) -> tuple[StandIn, dict[str, Any]]:
    """Ollama's API: a pulled model shows in /api/tags after a couple of polls."""
    state: dict[str, Any] = {"models": ["llama3:latest"], "pending": {}, "polls": 0}

    def route(call: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        if call == "POST /api/pull" and body:
            if body.get("model") == "broken":
                return 500, {"error": "pull model manifest: file does not exist"}
            state["pending"][body["model"] + ":latest"] = delay_listing
            return 200, {"status": "success"}
        if call == "GET /api/tags":
            for name, left in list(state["pending"].items()):
                if left <= 0:
                    state["models"].append(name)
                    del state["pending"][name]
                else:
                    state["pending"][name] = left - 1
            return 200, {"models": [{"name": n, "model": n} for n in state["models"]]}
        return 404, {"error": "not found"}

    return StandIn(route), state


async def test_ollama_pull_waits_until_tags_list_the_model() -> None:
    stand_in, state = _ollama_stand_in()
    with stand_in:
        client = OllamaClient(stand_in.url, poll_s=0.05)
        detail = await client.pull("tinyllama", timeout_s=10)
    assert "tinyllama:latest" in state["models"]
    assert "pulled tinyllama" in detail
    pulls = [r for r in stand_in.requests if r[1] == "/api/pull"]
    assert pulls == [("POST", "/api/pull", {"model": "tinyllama", "stream": False})]
    assert sum(1 for r in stand_in.requests if r[1] == "/api/tags") >= 3


async def test_ollama_pull_failure_is_reported() -> None:
    stand_in, _ = _ollama_stand_in()
    with stand_in, pytest.raises(ActionFailed, match="HTTP 500"):
        await OllamaClient(stand_in.url).pull("broken", timeout_s=5)


def _backend_stand_in(healthy: bool = True) -> StandIn:
    def route(call: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        if call == "GET /health":
            return 200, {"status": "healthy" if healthy else "degraded"}
        if call == "POST /simple-chat" and body:
            return 200, {"response": f"echo: {body['message']}"}
        if call == "GET /public/metrics":
            return 200, {"system": {"cpu": 12.5}}
        return 404, {}

    return StandIn(route)


@pytest.mark.postgres
async def test_verification_runs_the_phase_6_checks(
    make_settings: Callable[..., Settings], source_db: str, redis_url: str
) -> None:
    with _backend_stand_in() as backend:
        settings = make_settings(
            backend_url=backend.url,
            remediator={
                "database_container": "jarvis-pg",
                "redis_container": "jarvis-redis",
                "postgres_targets": {"jarvis-pg": {"dsn": source_db}},
                "redis_targets": {"jarvis-redis": {"url": redis_url}},
            },
        )
        postgres = PostgresOps(settings.remediator, DockerEngine())
        verifier = Verifier(settings, postgres, RedisOps(settings.remediator))
        results = await verifier.verify(["backend_health", "chat", "database", "redis", "metrics"])
    assert {r.name: r.ok for r in results} == dict.fromkeys(
        ["backend_health", "chat", "database", "redis", "metrics"], True
    )
    chat = next(r for r in results if r.name == "chat")
    assert "echo: Hello, system test" in chat.detail
    assert ("POST", "/simple-chat", {"message": "Hello, system test"}) in backend.requests


async def test_verification_reports_each_failing_check(
    make_settings: Callable[..., Settings],
) -> None:
    with _backend_stand_in(healthy=False) as backend:
        settings = make_settings(
            backend_url=backend.url,
            remediator={
                "database_container": "jarvis-pg",
                "postgres_targets": {"jarvis-pg": {"dsn": "postgresql://x@127.0.0.1:1/none"}},
            },
        )
        verifier = Verifier(
            settings,
            PostgresOps(settings.remediator, DockerEngine()),
            RedisOps(settings.remediator),
        )
        results = {r.name: r for r in await verifier.verify(["backend_health", "database"])}
    assert results["backend_health"].ok is False
    assert "degraded" in results["backend_health"].detail
    assert results["database"].ok is False


@pytest.mark.docker
async def test_diagnostics_bundle_holds_the_phase_4_evidence(
    make_settings: Callable[..., Settings], containers: Containers, tmp_path: Path
) -> None:
    name = containers.name("backend")
    containers.run("echo diag-marker; exec sleep 100000", name=name, network_mode="none")
    with _backend_stand_in() as backend:
        settings = make_settings(
            backend_url=backend.url,
            ollama_url="http://127.0.0.1:1",
            remediator={"allowed_targets": [name, "jt5-absent"]},
        )
        diagnostics = Diagnostics(settings, DockerEngine())
        for _ in range(50):
            files = await diagnostics.collect(tmp_path / "incident-1", [name], 600)
            if "diag-marker" in (tmp_path / "incident-1" / f"{name}_logs.txt").read_text():
                break
            await asyncio.sleep(0.1)
    names = {f.name for f in files}
    assert names == {
        "container_status.txt",
        "resource_usage.txt",
        "disk_usage.txt",
        f"{name}_logs.txt",
        "backend_health.json",
        "ollama_models.json",
        "system_processes.txt",
        "memory_status.txt",
        "disk_status.txt",
    }
    folder = tmp_path / "incident-1"
    status = (folder / "container_status.txt").read_text()
    assert f"{name}: running" in status
    assert "jt5-absent: not found" in status
    assert name in (folder / "resource_usage.txt").read_text()
    assert "diag-marker" in (folder / f"{name}_logs.txt").read_text()
    assert '"healthy"' in (folder / "backend_health.json").read_text()
    assert "error" in (folder / "ollama_models.json").read_text()  # nothing on port 1
    assert "Mem:" in (folder / "memory_status.txt").read_text()
    assert "PID" in (folder / "system_processes.txt").read_text()
    # Issue 18, finding 8: evidence (logs, processes) is readable by the service's user only.
    assert folder.stat().st_mode & 0o777 == 0o700
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {"0o600"}
