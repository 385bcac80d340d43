"""Probes of the data stores and the host: PostgreSQL, Redis, disk / memory / CPU
(runbook "Service-Specific Checks" and the triage checklist)."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import psutil
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.detector.probes import Outcome, ProbeResult, Schedule
from shared.events import Level

__all__ = ["HostProbe", "PostgresProbe", "RedisProbe", "asyncpg_dsn"]


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants `postgresql://`; SQLAlchemy URLs say `postgresql+asyncpg://`."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


class PostgresProbe:
    """Connect + `SELECT 1`, then connections in use against `max_connections`."""

    service = "postgres"
    check = "connect"

    def __init__(self, dsn: str, max_connections_pct: float, schedule: Schedule) -> None:
        self.name = "postgres"
        self.schedule = schedule
        self._dsn = asyncpg_dsn(dsn)
        self._max_pct = max_connections_pct

    async def run(self) -> Outcome:
        timeout = self.schedule.timeout_s
        try:
            conn = await asyncpg.connect(self._dsn, timeout=timeout)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            return self._down(f"cannot connect: {type(exc).__name__}: {exc}")
        try:
            one = await conn.fetchval("SELECT 1", timeout=timeout)
            in_use = await conn.fetchval("SELECT count(*) FROM pg_stat_activity", timeout=timeout)
            limit = int(await conn.fetchval("SHOW max_connections", timeout=timeout))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            return self._down(f"query failed: {type(exc).__name__}: {exc}")
        finally:
            await conn.close(timeout=timeout)
        pct = 100.0 * int(in_use) / limit if limit else 0.0
        return Outcome(
            [
                ProbeResult(self.service, "connect", one == 1, "SELECT 1 answered"),
                ProbeResult(
                    self.service,
                    "connections",
                    pct < self._max_pct,
                    f"{in_use} of {limit} connections in use ({pct:.0f}%,"
                    f" threshold {self._max_pct:g}%)",
                    Level.MEDIUM,
                    value=round(pct, 2),
                ),
            ]
        )

    def _down(self, detail: str) -> Outcome:
        return Outcome([ProbeResult(self.service, "connect", False, detail)])


class RedisProbe:
    """`PING`, then used memory against `maxmemory` (no limit: nothing to compare)."""

    service = "redis"
    check = "ping"

    def __init__(self, url: str, max_memory_pct: float, schedule: Schedule) -> None:
        self.name = "redis"
        self.schedule = schedule
        self._url = url
        self._max_pct = max_memory_pct
        self._client: Redis | None = None

    async def run(self) -> Outcome:
        timeout = self.schedule.timeout_s
        if self._client is None:
            self._client = Redis.from_url(
                self._url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        try:
            pong = await self._client.ping()
            info = await self._client.info("memory")
        except (RedisError, OSError) as exc:
            # A fresh connection next time: the server may have restarted.
            await self.close()
            return Outcome([ProbeResult(self.service, "ping", False, f"no PONG: {exc}")])
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        results = [ProbeResult(self.service, "ping", bool(pong), "PONG")]
        if limit:
            pct = 100.0 * used / limit
            results.append(
                ProbeResult(
                    self.service,
                    "memory",
                    pct < self._max_pct,
                    f"used_memory {used} of maxmemory {limit} ({pct:.0f}%,"
                    f" threshold {self._max_pct:g}%)",
                    Level.MEDIUM,
                    value=round(pct, 2),
                )
            )
        else:
            results.append(ProbeResult(self.service, "memory", True, "no maxmemory set"))
        return Outcome(results)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class HostProbe:
    """Disk, memory and CPU of the host the detector runs on (runbook triage step 2)."""

    service = "host"
    check = "resources"

    def __init__(
        self, disk_path: str, disk_pct: float, memory_pct: float, cpu_pct: float, schedule: Schedule
    ) -> None:
        self.name = "host"
        self.schedule = schedule
        self._disk_path = disk_path
        self._limits = {"disk": disk_pct, "memory": memory_pct, "cpu": cpu_pct}
        psutil.cpu_percent(interval=None)  # primes the CPU counter; the next call is a delta

    async def run(self) -> Outcome:
        disk, memory, cpu = await asyncio.to_thread(self._sample)
        results = []
        for check, value in (("disk", disk), ("memory", memory), ("cpu", cpu)):
            limit = self._limits[check]
            results.append(
                ProbeResult(
                    self.service,
                    check,
                    value < limit,
                    f"{check} {value:.0f}% used (threshold {limit:g}%)",
                    Level.MEDIUM,
                    value=value,
                )
            )
        return Outcome(results)

    def _sample(self) -> tuple[float, float, float]:
        return (
            float(psutil.disk_usage(self._disk_path).percent),
            float(psutil.virtual_memory().percent),
            float(psutil.cpu_percent(interval=None)),
        )
