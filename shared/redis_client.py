"""Where the event bus's Redis is, and the one place its client is built.

Two ways to name it (docs/redis-ha.md):

* one server: `REDIS_URL=redis://[user:password@]host:port/db` (`rediss://` for TLS, with
  redis-py's `ssl_*` query options; `unix://` for a socket);
* the master that Redis Sentinel names: `REDIS_SENTINELS=host:port,host:port` and
  `REDIS_SENTINEL_MASTER` (default `mymaster`), with `REDIS_URL`, when set, giving only the
  master's user, password, database and TLS options (its host is not used); or all of it in
  one URL, `redis+sentinel://[user:password@]host:port[,host:port…]/master[/db]`
  (`rediss+sentinel://` for TLS).

Sentinels often have a password of their own (`requirepass` in sentinel.conf), so theirs
is a separate setting (`REDIS_SENTINEL_PASSWORD`, and `REDIS_SENTINEL_USERNAME` for an ACL
user); unset, the sentinels are asked without one. With TLS the sentinels are spoken to
over TLS too, with the same `ssl_*` options.

Through Sentinel every new connection asks the sentinels for the master first, and a
connection that meets a demoted master (READONLY) is closed and raises ConnectionError, so
after a failover the client lands on the new master by itself; the callers treat the gap
as Redis being unavailable (shared/stream_consumer.py, `shared.runtime.build_app`).

The remediator's target Redis (services/remediator/redis_ops.py) and the detector's Redis
probe are Jarvis's own Redis, not this one, and are built where they are used.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "DEFAULT_MASTER",
    "RedisLocation",
    "connect",
    "follow_master",
    "is_unavailable",
    "parse_hosts",
    "parse_location",
]

DEFAULT_MASTER = "mymaster"
_SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}
_DIRECT_SCHEMES = ("redis", "rediss", "unix")
_SENTINEL_PORT = 26379
_HEALTH_CHECK_S = 30
# Error replies of a server that cannot take writes right now, whoever's client meets them:
# a replica (READONLY), a replica cut off from its master (MASTERDOWN), a server still
# loading its data (LOADING, BusyLoadingError is a ConnectionError already), a master
# without enough replicas in reach (NOREPLICAS, with min-replicas-to-write), a blocked
# read cut short by the master turning replica (UNBLOCKED).
_UNAVAILABLE_REPLIES = (
    "READONLY",
    "MASTERDOWN",
    "LOADING",
    "NOREPLICAS",
    "UNBLOCKED",
    "TRYAGAIN",
)


@dataclass(frozen=True)
class RedisLocation:
    """How to reach the event bus's Redis: a URL, or sentinels and a master name."""

    url: str | None = field(default=None, repr=False)  # may hold a password
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = DEFAULT_MASTER
    # The master's connection options (user, password, db, TLS) in sentinel mode.
    options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def via_sentinel(self) -> bool:
        return bool(self.sentinels)

    @property
    def tls(self) -> bool:
        return bool(self.options.get("ssl"))

    def describe(self) -> str:
        """For logs: where, without any password."""
        if self.via_sentinel:
            hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
            scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
            return f"{scheme}://{hosts}/{self.master}/{self.options.get('db', 0)}"
        parts = urlsplit(self.url or "")
        host = parts.hostname or parts.path
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"


def parse_hosts(text: str, what: str = "REDIS_SENTINELS") -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (`[::1]:26379` for IPv6; no port: 26379) → pairs.
    ValueError naming `what` for anything else."""
    hosts: list[tuple[str, int]] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.startswith("["):
            host, sep, rest = item[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"{what}: {item!r} is not [address]:port")
            port_text = rest[1:]
        elif item.count(":") > 1:
            raise ValueError(f"{what}: {item!r}: write an IPv6 address as [address]:port")
        else:
            host, _, port_text = item.partition(":")
        if not host:
            raise ValueError(f"{what}: {item!r} has no host")
        try:
            port = int(port_text) if port_text else _SENTINEL_PORT
        except ValueError:
            raise ValueError(f"{what}: {item!r}: the port is not a number") from None
        if not 0 < port < 65536:
            raise ValueError(f"{what}: {item!r}: the port is out of range")
        hosts.append((host, port))
    if not hosts:
        raise ValueError(f"{what}: no host:port given")
    return tuple(hosts)


def _master_options(url: str) -> dict[str, Any]:
    """User, password, db and TLS options of a redis:// or rediss:// URL (host dropped)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("redis", "rediss"):
        raise ValueError(
            f"REDIS_URL: with REDIS_SENTINELS it gives the master's user, password, database "
            f"and TLS options, so it must be redis:// or rediss://, not {scheme or url!r}"
        )
    try:
        options: dict[str, Any] = dict(parse_url(url))
    except ValueError as exc:
        raise ValueError(f"REDIS_URL: {exc}") from None
    for key in ("host", "port", "path"):
        options.pop(key, None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    return options


def _parse_sentinel_url(url: str) -> tuple[tuple[tuple[str, int], ...], str, dict[str, Any]]:
    """`redis+sentinel://[user:password@]h:p[,h:p…]/master[/db][?ssl options]`."""
    scheme, _, rest = url.partition("://")
    tls = _SENTINEL_SCHEMES[scheme.lower()]
    netloc, _, path_query = rest.partition("/")
    credentials, at, hosts_text = netloc.rpartition("@")
    if not at:
        credentials, hosts_text = "", netloc
    path, _, query = path_query.partition("?")
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError(
            "REDIS_URL: a redis+sentinel:// URL names the master after the hosts: "
            "redis+sentinel://host:port[,host:port]/master_name[/db]"
        )
    master = parts[0]
    sentinels = parse_hosts(hosts_text, "REDIS_URL")
    # What is left is an ordinary URL of the master, less its (unknown) address.
    plain = f"{'rediss' if tls else 'redis'}://{credentials}{'@' if at else ''}sentinel"
    if len(parts) == 2:
        if not parts[1].isdigit():
            raise ValueError(f"REDIS_URL: database {parts[1]!r} is not a number")
        plain += f"/{parts[1]}"
    if query:
        plain += f"?{query}"
    return sentinels, master, _master_options(plain)


def parse_location(
    url: str | None,
    sentinels: str | None = None,
    master: str | None = None,
    sentinel_username: str | None = None,
    sentinel_password: str | None = None,
) -> RedisLocation | None:
    """Where the settings put Redis; None when neither is set (`up` embeds one).
    ValueError naming the setting when they make no sense."""
    url = (url or "").strip() or None
    sentinels = (sentinels or "").strip() or None
    scheme = url.split("://", 1)[0].lower() if url and "://" in url else ""
    auth = {"sentinel_username": sentinel_username, "sentinel_password": sentinel_password}
    if url and scheme in _SENTINEL_SCHEMES:
        if sentinels:
            raise ValueError(
                "REDIS_SENTINELS: set either it or a redis+sentinel:// REDIS_URL, not both"
            )
        hosts, name, options = _parse_sentinel_url(url)
        return RedisLocation(sentinels=hosts, master=name, options=options, **auth)
    if sentinels:
        name = (master or DEFAULT_MASTER).strip()
        if not name:
            raise ValueError("REDIS_SENTINEL_MASTER: empty")
        options = _master_options(url) if url else {}
        return RedisLocation(sentinels=parse_hosts(sentinels), master=name, options=options, **auth)
    if sentinel_password or sentinel_username:
        raise ValueError(
            "REDIS_SENTINEL_PASSWORD: set, but no sentinels are (REDIS_SENTINELS or a "
            "redis+sentinel:// REDIS_URL)"
        )
    if url is None:
        return None
    if scheme not in _DIRECT_SCHEMES:
        raise ValueError(
            "REDIS_URL: must start with redis://, rediss://, unix://, redis+sentinel:// or "
            f"rediss+sentinel://, not {scheme or url!r}"
        )
    return RedisLocation(url=url)


def _sentinel_options(location: RedisLocation) -> dict[str, Any]:
    """How to speak to the sentinels: their own credentials, the master's TLS options,
    short timeouts (a sentinel that does not answer is skipped for the next one)."""
    options: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 1.0}
    if location.sentinel_username:
        options["username"] = location.sentinel_username
    if location.sentinel_password:
        options["password"] = location.sentinel_password
    if location.tls:
        options["ssl"] = True
        options.update({k: v for k, v in location.options.items() if k.startswith("ssl_")})
    return options


def connect(location: RedisLocation) -> Redis:
    """A client (not connected yet) of `location`'s Redis, or of its current master."""
    if not location.via_sentinel:
        assert location.url is not None
        return Redis.from_url(location.url, health_check_interval=_HEALTH_CHECK_S)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(location.sentinels), sentinel_kwargs=_sentinel_options(location)
    )
    options = {"socket_connect_timeout": 5.0, **location.options}
    client: Redis = sentinel.master_for(
        location.master,
        redis_class=_SentinelMaster,
        connection_pool_class=_MasterPool,
        health_check_interval=_HEALTH_CHECK_S,
        **options,
    )
    assert isinstance(client, _SentinelMaster)
    client.sentinel_manager = sentinel
    return client


async def follow_master(client: Redis, interval_s: float = 1.0) -> None:
    """Ask the sentinels every `interval_s` where the master is, for ever; when it moved,
    the pool closes its idle connections to the old one and each busy one as it is
    released (`_MasterPool`). Without this, a connection stays with a demoted master that
    is still alive until that server learns it is a replica (up to Sentinel's 10 s INFO
    period), and the writes it takes meanwhile are lost when it resynchronises. No-op
    without Sentinel."""
    pool = client.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return
    while True:
        await asyncio.sleep(interval_s)
        # No master right now (failing over, sentinels away): the commands will say so.
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
            await pool.get_master_address()  # type: ignore[no-untyped-call]


class _MasterPool(SentinelConnectionPool):
    """Connections to the master Sentinel names. A connection handed back while the pool
    knows of a newer master (one that was busy when the master moved) is closed rather
    than reused, so it reconnects to the new one (redis-py's synchronous pool does this;
    its asyncio pool does not)."""

    async def release(self, connection: Any) -> None:
        address = self.master_address
        if address is not None and (connection.host, connection.port) != tuple(address):
            await connection.disconnect()
        await super().release(connection)


class _SentinelMaster(Redis):
    """The master's client; closing it closes the sentinels' connections too."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            await self.sentinel_manager.aclose()


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says Redis cannot serve us right now (down, restarting, failing over,
    a demoted master) rather than that the request itself is wrong."""
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | ReadOnlyError | OSError):
        return True
    if isinstance(exc, ResponseError):
        text = str(exc)
        if text.split(" ", 1)[0].upper() in _UNAVAILABLE_REPLIES:
            return True
        # Redis < 7 wraps the error of a command a script called: "Error running script
        # (call to f_…): @user_script:3: @user_script: 3: -READONLY You can't write …".
        _, wrapped, reply = text.rpartition(": -")
        return bool(wrapped) and reply.split(" ", 1)[0].upper() in _UNAVAILABLE_REPLIES
    return False
