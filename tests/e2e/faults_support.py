"""Helpers for the fault tests: a private PostgreSQL cluster, stream drain checks, DB reads."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis as redis_sync
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.embedded_redis import free_port

__all__ = ["ALL_GROUPS", "FAST", "PostgresCluster", "drained", "query", "wait_drained"]

# Timings of the fault tests: quick reads, reclaims and group checks; no probes.
FAST = {
    "JARVIS_CONSUMER__BLOCK_MS": "100",
    "JARVIS_CONSUMER__RECLAIM_IDLE_MS": "1500",
    "JARVIS_CONSUMER__GROUP_CHECK_S": "0.5",
    "JARVIS_DETECTOR__PROBES_ENABLED": "false",
}
# Every stream and the groups that read it, all five services running.
ALL_GROUPS: dict[str, tuple[str, ...]] = {
    "jarvis:alerts": ("triage", "recorder", "remediator"),
    "jarvis:severity": ("escalator", "recorder"),
    "jarvis:actions:requested": ("remediator", "recorder"),
    "jarvis:actions:completed": ("triage", "escalator", "recorder"),
    "jarvis:escalations": ("escalator", "recorder"),
    "jarvis:incidents": ("escalator", "triage", "recorder", "remediator"),
}


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class PostgresCluster:
    """A PostgreSQL server of the test's own, so the test may stop and start it."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        # Not under pytest's tmp_path: the postgres account must be able to reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="jarvis-pg-"))
        self.port = free_port()

    @property
    def available(self) -> bool:
        return self.bin is not None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://jarvis@127.0.0.1:{self.port}/jarvis"

    def _run(self, *args: str) -> None:
        assert self.bin
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "jarvis", "--auth=trust")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "jarvis", "jarvis")

    def start(self) -> None:
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.dir / "data"),
            "-l",
            str(self.dir / "log"),
            "-w",
            "-o",
            opts,
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def drained(redis: redis_sync.Redis, groups: dict[str, tuple[str, ...]]) -> bool:
    """Every named group has read and acknowledged everything on its stream."""
    for key, names in groups.items():
        try:
            info = {g["name"].decode(): g for g in redis.xinfo_groups(key)}
            last = redis.xinfo_stream(key)["last-generated-id"]
        except redis_sync.ResponseError:
            return False
        for name in names:
            group = info.get(name)
            # `lag` is unknown (nil) after a restart; the last delivered id is always known.
            if group is None or group["pending"] or group["last-delivered-id"] != last:
                return False
    return True


def wait_drained(
    redis: redis_sync.Redis, groups: dict[str, tuple[str, ...]], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if drained(redis, groups):
                return
        except redis_sync.ConnectionError:
            pass
        time.sleep(0.2)
    state = {k: redis.xinfo_groups(k) for k in groups}
    raise AssertionError(f"streams not drained within {timeout_s}s: {state}")


async def query(database_url: str, sql: str, **params: Any) -> list[Any]:
    """Rows of a read query, on a short-lived connection."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()
