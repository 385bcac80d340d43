"""Database plumbing: the engine for SQLite or PostgreSQL, and the Alembic upgrade run at start."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, overload

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = [
    "MIGRATIONS",
    "as_utc",
    "checkpoint",
    "current_revision",
    "head_revision",
    "make_engine",
    "migrate",
]

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant: replicas starting together take turns to migrate PostgreSQL.
_MIGRATION_LOCK = 73_062_011


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def make_engine(url: str) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    if url.startswith("postgresql"):
        kwargs.update(pool_size=5, max_overflow=5, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


# Pages in the write-ahead log before a commit copies them into the database itself.
# The recorder checkpoints in the background every second (`checkpoint`), so a commit
# never pays for one; this is the backstop should that loop fall behind (about 400 MiB).
_WAL_BACKSTOP_PAGES = 100_000
# A log reset after a checkpoint is cut back to this size (SQLite keeps the file otherwise).
_WAL_SIZE_LIMIT = 64 * 1_048_576


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers (the API) work while the recorder writes; NORMAL syncs at
    checkpoints instead of every commit, durable across a process crash (not a power cut).
    A 64 MiB page cache keeps the indexes the recorder writes in memory."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute(f"PRAGMA wal_autocheckpoint={_WAL_BACKSTOP_PAGES}")
    cursor.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
    cursor.close()


async def checkpoint(engine: AsyncEngine, truncate_above: int = _WAL_SIZE_LIMIT) -> None:
    """Copy SQLite's write-ahead log into the database without blocking writers (PASSIVE),
    on a connection of its own: commits stay short whatever the write rate. A log that grew
    beyond `truncate_above` (a burst, a reader holding an old snapshot) is then checkpointed
    with TRUNCATE, which waits for writers for a moment and cuts the file to nothing:
    without it the file keeps the largest size it ever reached."""
    if engine.dialect.name != "sqlite":
        return
    async with engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    if _wal_size(str(engine.url.database)) > truncate_above:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _wal_size(database: str) -> int:
    """The size of SQLite's write-ahead log file (a stat: not worth a thread)."""
    try:
        return Path(f"{database}-wal").stat().st_size
    except FileNotFoundError:
        return 0


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(_config(connection), "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema up to the newest migration (a no-op when it is there already)."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
        await conn.run_sync(_upgrade)


def head_revision() -> str | None:
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at; None for an empty database."""

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)
