"""Redis targets (the Jarvis Redis, not the event bus): BGSAVE, FLUSHDB, PING.

Reached over the Redis protocol at the target's URL (settings.remediator.redis_targets),
so no redis-cli and no shell are involved.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from services.remediator.ports import ActionFailed
from shared.settings import RemediatorSettings

__all__ = ["RedisOps"]


class RedisOps:
    """`DataStore` over redis-py."""

    def __init__(self, settings: RemediatorSettings) -> None:
        self._settings = settings

    def _client(self, target: str) -> Redis:
        try:
            url = self._settings.redis_targets[target].url
        except KeyError:
            raise ActionFailed(f"{target} is not a configured Redis target") from None
        return Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)

    async def bgsave(self, target: str, timeout_s: float) -> tuple[int, int]:
        """BGSAVE, then wait until LASTSAVE advances; (LASTSAVE before, after)."""
        client = self._client(target)
        try:
            before = _epoch(await client.lastsave())
            # LASTSAVE has one-second resolution: a save finishing in the same second as
            # the previous one would not show. Start in a later second than `before`.
            server_now, _ = await client.time()
            if int(server_now) <= before:
                await asyncio.sleep(1.05 - (time.time() % 1))
            try:
                await client.bgsave()
            except ResponseError as exc:  # a save already running also advances LASTSAVE
                if "in progress" not in str(exc):
                    raise ActionFailed(f"BGSAVE: {exc}") from exc
            deadline = time.monotonic() + timeout_s
            while True:
                after = _epoch(await client.lastsave())
                if after > before:
                    info = await client.info("persistence")
                    if info.get("rdb_last_bgsave_status", "ok") != "ok":
                        raise ActionFailed("BGSAVE finished with an error (see the Redis log)")
                    return before, after
                if time.monotonic() > deadline:
                    raise ActionFailed(f"LASTSAVE did not advance within {timeout_s:g} s")
                await asyncio.sleep(0.1)
        except RedisError as exc:
            raise ActionFailed(f"redis {target}: {exc}") from exc
        finally:
            await client.aclose()

    async def flushdb(self, target: str) -> int:
        """FLUSHDB (the runbook's cache clearing); the number of keys removed."""
        client = self._client(target)
        try:
            keys = int(await client.dbsize())
            await client.flushdb()
            return keys
        except RedisError as exc:
            raise ActionFailed(f"redis {target}: {exc}") from exc
        finally:
            await client.aclose()

    async def ping(self, target: str) -> bool:
        client = self._client(target)
        try:
            return bool(await client.ping())
        except RedisError as exc:
            raise ActionFailed(f"redis {target}: {exc}") from exc
        finally:
            await client.aclose()


def _epoch(value: object) -> int:
    timestamp = getattr(value, "timestamp", None)
    if callable(timestamp):
        return int(timestamp())
    return int(str(value))
