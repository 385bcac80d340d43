"""PostgreSQL targets: emergency pg_dump, wait until ready, connection count, SELECT 1.

Two ways to reach a target (settings.remediator.postgres_targets):
- docker exec in the container named by the target, as the runbook does
  (`pg_dump -U sutazai sutazai`, `pg_isready -U sutazai`, `psql -c …`);
- when the target has a `dsn`: the local pg_dump binary and asyncpg against it.
Every command is an argv list; the password of a DSN travels in PGPASSWORD, not argv.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from services.remediator.artifacts import private_file
from services.remediator.ports import ActionFailed, ContainerEngine
from shared.settings import RemediatorPostgresTarget, RemediatorSettings

__all__ = ["PostgresOps", "find_pg_dump", "plain_dsn"]

_COUNT_SQL = "SELECT count(*) FROM pg_stat_activity"


def plain_dsn(dsn: str) -> tuple[str, str | None]:
    """`postgresql+asyncpg://u:pw@h/db` → (`postgresql://u@h/db`, `pw`)."""
    parts = urlsplit(dsn)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise ActionFailed(f"dsn: scheme {parts.scheme!r} is not postgresql")
    password = parts.password
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(("postgresql", netloc, parts.path, parts.query, "")), password


def find_pg_dump(bin_dir: Path | None) -> str:
    """pg_dump from the configured folder, else PATH, else the newest Debian cluster's."""
    if bin_dir is not None:
        candidate = bin_dir / "pg_dump"
        if candidate.exists():
            return str(candidate)
        raise ActionFailed(f"pg_bin_dir: no pg_dump in {bin_dir}")
    found = shutil.which("pg_dump")
    if found:
        return found
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), key=lambda p: int(p.parts[-3])
    )
    if versions:
        return str(versions[-1])
    raise ActionFailed("pg_dump is not installed (set remediator.pg_bin_dir)")


class PostgresOps:
    """`PostgresPort` over docker exec or a DSN."""

    def __init__(self, settings: RemediatorSettings, engine: ContainerEngine) -> None:
        self._settings = settings
        self._engine = engine

    def _target(self, name: str) -> RemediatorPostgresTarget:
        try:
            return self._settings.postgres_targets[name]
        except KeyError:
            raise ActionFailed(f"{name} is not a configured PostgreSQL target") from None

    async def backup(self, target: str, dest: Path, timeout_s: float) -> Path:
        """Dump the database (plain SQL, like the runbook's) into `dest`."""
        config = self._target(target)
        partial = dest.with_name(dest.name + ".partial")
        private_file(partial).close()  # 0600 before a byte is written: pg_dump keeps the mode
        try:
            if config.dsn:
                await self._dump_dsn(config.dsn, partial, timeout_s)
            else:
                argv = ["pg_dump", "-U", config.user, "-d", config.database]
                code, err = await self._engine.exec_to_file(target, argv, partial, timeout_s)
                if code != 0:
                    raise ActionFailed(f"pg_dump in {target} exited {code}: {_text(err)}")
            if partial.stat().st_size == 0:
                raise ActionFailed("pg_dump wrote nothing")
            partial.rename(dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    async def _dump_dsn(self, dsn: str, dest: Path, timeout_s: float) -> None:
        url, password = plain_dsn(dsn)
        env = dict(os.environ)
        if password:
            env["PGPASSWORD"] = password
        process = await asyncio.create_subprocess_exec(
            find_pg_dump(self._settings.pg_bin_dir),
            f"--dbname={url}",
            f"--file={dest}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            _, err = await asyncio.wait_for(process.communicate(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise ActionFailed(f"pg_dump exited {process.returncode}: {_text(err)}")

    async def wait_ready(self, target: str, timeout_s: float) -> float:
        """Poll every 2 s (the runbook's loop) until the server answers; seconds waited."""
        started = time.monotonic()
        deadline = started + timeout_s
        last = "no answer"
        while True:
            try:
                left = max(deadline - time.monotonic(), 0.1)
                await asyncio.wait_for(self._ready_once(target), left)
                return time.monotonic() - started
            except (ActionFailed, OSError, TimeoutError, asyncpg.PostgresError) as exc:
                last = str(exc) or type(exc).__name__
            if time.monotonic() + 2 > deadline:
                raise ActionFailed(f"{target} not ready within {timeout_s:g} s: {last}")
            await asyncio.sleep(2)

    async def _ready_once(self, target: str) -> None:
        config = self._target(target)
        if config.dsn:
            await self.select_one(target)
            return
        argv = ["pg_isready", "-U", config.user, "-d", config.database]
        code, out = await self._engine.exec_to_file(target, argv, None, 10)
        if code != 0:
            raise ActionFailed(f"pg_isready exited {code}: {_text(out)}")

    async def connections(self, target: str) -> int:
        config = self._target(target)
        if config.dsn:
            value = await self._fetch(config.dsn, _COUNT_SQL)
            return int(str(value))
        argv = ["psql", "-U", config.user, "-d", config.database, "-At", "-c", _COUNT_SQL]
        code, out = await self._engine.exec_to_file(target, argv, None, 30)
        if code != 0:
            raise ActionFailed(f"psql exited {code}: {_text(out)}")
        try:
            return int(_text(out).split()[0])
        except (IndexError, ValueError):
            raise ActionFailed(f"psql answered {_text(out)!r}") from None

    async def select_one(self, target: str) -> str:
        config = self._target(target)
        if config.dsn:
            value = await self._fetch(config.dsn, "SELECT 'Database OK'")
            return str(value)
        argv = ["psql", "-U", config.user, "-d", config.database, "-At", "-c", "SELECT 1"]
        code, out = await self._engine.exec_to_file(target, argv, None, 30)
        if code != 0:
            raise ActionFailed(f"psql exited {code}: {_text(out)}")
        return _text(out)

    async def _fetch(self, dsn: str, sql: str) -> object:
        url, password = plain_dsn(dsn)
        conn = await asyncpg.connect(url, password=password, timeout=10)
        try:
            return await conn.fetchval(sql, timeout=10)
        finally:
            await conn.close()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()[-2000:]
