"""Runbook Phase 6, post-recovery verification: backend health, a chat round trip,
the database (`SELECT 'Database OK'`), Redis PING and the backend's public metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from services.remediator.ports import CheckResult, DataStore, PostgresPort
from shared.settings import Settings

__all__ = ["Verifier"]


class Verifier:
    """`VerifierPort`: each check independent, all of them run concurrently."""

    def __init__(self, settings: Settings, postgres: PostgresPort, redis: DataStore) -> None:
        self._backend_url = settings.backend_url.rstrip("/")
        self._database = settings.remediator.database_container
        self._redis = settings.remediator.redis_container
        self._postgres_port = postgres
        self._redis_port = redis

    async def verify(self, checks: list[str]) -> list[CheckResult]:
        table: dict[str, Callable[[], Awaitable[CheckResult]]] = {
            "backend_health": self._backend_health,
            "chat": self._chat,
            "database": self._database_ok,
            "redis": self._redis_ping,
            "metrics": self._metrics,
        }
        return list(await asyncio.gather(*(_guarded(name, table[name]) for name in checks)))

    async def _backend_health(self) -> CheckResult:
        async with httpx.AsyncClient(base_url=self._backend_url, timeout=10) as client:
            response = await client.get("/health")
        body = response.json()
        status = body.get("status") if isinstance(body, dict) else None
        ok = response.status_code == 200 and status == "healthy"
        return CheckResult("backend_health", ok, f"HTTP {response.status_code}, status {status!r}")

    async def _chat(self) -> CheckResult:
        async with httpx.AsyncClient(base_url=self._backend_url, timeout=60) as client:
            response = await client.post("/simple-chat", json={"message": "Hello, system test"})
        body = response.json()
        answer = body.get("response") if isinstance(body, dict) else None
        ok = response.status_code == 200 and bool(answer)
        detail = f"HTTP {response.status_code}, response {str(answer)[:80]!r}"
        return CheckResult("chat", ok, detail)

    async def _database_ok(self) -> CheckResult:
        answer = await self._postgres_port.select_one(self._database)
        return CheckResult("database", True, f"{self._database}: {answer}")

    async def _redis_ping(self) -> CheckResult:
        ok = await self._redis_port.ping(self._redis)
        return CheckResult("redis", ok, f"{self._redis}: {'PONG' if ok else 'no PONG'}")

    async def _metrics(self) -> CheckResult:
        async with httpx.AsyncClient(base_url=self._backend_url, timeout=10) as client:
            response = await client.get("/public/metrics")
        body = response.json()
        system = body.get("system") if isinstance(body, dict) else None
        ok = response.status_code == 200 and isinstance(body, dict)
        return CheckResult(
            "metrics", ok, f"HTTP {response.status_code}, system {system!r}"[:200], {"body": body}
        )


async def _guarded(name: str, check: Callable[[], Awaitable[CheckResult]]) -> CheckResult:
    try:
        return await check()
    except Exception as exc:  # a failing check is a result, not a crash
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}"[:300])
