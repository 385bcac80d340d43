"""Where the event bus's Redis is: REDIS_URL, REDIS_SENTINELS, redis+sentinel:// URLs, and
which errors mean "Redis unavailable" (shared/redis_client.py)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.sentinel import MasterNotFoundError, SentinelConnectionPool
from redis.exceptions import (
    BusyLoadingError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)

from shared.redis_client import RedisLocation, connect, is_unavailable, parse_location
from shared.settings import ConfigError, load_settings

_ENV = (
    "REDIS_URL",
    "REDIS_SENTINELS",
    "REDIS_SENTINEL_MASTER",
    "REDIS_SENTINEL_USERNAME",
    "REDIS_SENTINEL_PASSWORD",
    "JARVIS_CONFIG",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)


def test_nothing_set_means_embedded_and_a_plain_url_stays_a_url() -> None:
    assert parse_location(None) is None
    assert parse_location("  ") is None
    location = parse_location("redis://triage:s3cret@127.0.0.1:6379/2")
    assert location == RedisLocation(url="redis://triage:s3cret@127.0.0.1:6379/2")
    assert not location.via_sentinel
    assert location.describe() == "redis://127.0.0.1:6379"  # no password in logs


def test_sentinels_and_master_from_settings_with_the_masters_credentials_from_redis_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "127.0.0.1:26379, localhost:26380,[::1]:26381,host-b")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "jarvis")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "sentinel-pw")
    monkeypatch.setenv("REDIS_URL", "redis://triage:master%40pw@ignored:1/3")
    location = load_settings().redis_location
    assert location is not None
    assert location.via_sentinel
    assert location.sentinels == (
        ("127.0.0.1", 26379),
        ("localhost", 26380),
        ("::1", 26381),
        ("host-b", 26379),
    )
    assert location.master == "jarvis"
    assert dict(location.options) == {"username": "triage", "password": "master@pw", "db": 3}
    assert location.sentinel_password == "sentinel-pw"
    assert location.sentinel_username is None
    assert "pw" not in location.describe()
    assert "pw" not in repr(location)


def test_default_master_name_and_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "10.0.0.1:26379")
    location = load_settings().redis_location
    assert location is not None
    assert (location.master, dict(location.options)) == ("mymaster", {})


def test_a_sentinel_url_carries_everything() -> None:
    location = parse_location(
        "redis+sentinel://escalator:p%3Aw@127.0.0.1:26379,127.0.0.1:26380/jarvis/4",
        sentinel_password="theirs",
    )
    assert location is not None
    assert location.sentinels == (("127.0.0.1", 26379), ("127.0.0.1", 26380))
    assert location.master == "jarvis"
    assert dict(location.options) == {"username": "escalator", "password": "p:w", "db": 4}
    assert location.sentinel_password == "theirs"
    assert location.describe() == "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/jarvis/4"
    bare = parse_location("redis+sentinel://s1/mymaster")
    assert bare is not None
    assert (bare.sentinels, bare.master, dict(bare.options)) == (
        (("s1", 26379),),
        "mymaster",
        {},
    )


def test_tls_through_sentinel_keeps_the_ssl_options_for_master_and_sentinels() -> None:
    location = parse_location(
        "rediss+sentinel://u:p@127.0.0.1:26379/jarvis?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required"
    )
    assert location is not None
    assert location.tls
    assert location.options["ssl"] is True
    assert location.options["ssl_ca_certs"] == "/etc/ca.pem"
    client = connect(location)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.connection_class.__name__ == "SentinelManagedSSLConnection"
    sentinel_pool = client.sentinel_manager.sentinels[0].connection_pool  # type: ignore[attr-defined]
    assert sentinel_pool.connection_class.__name__ == "SSLConnection"
    assert sentinel_pool.connection_kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    with_url = parse_location("rediss://u:p@x/0?ssl_cert_reqs=none", sentinels="127.0.0.1")
    assert with_url is not None
    assert with_url.tls
    assert with_url.options["ssl_cert_reqs"] == "none"


def test_the_sentinel_client_asks_the_sentinels_with_their_own_password() -> None:
    location = parse_location(
        "redis://triage:master-pw@/0",
        sentinels="127.0.0.1:26379",
        master="jarvis",
        sentinel_username="watcher",
        sentinel_password="sentinel-pw",
    )
    assert location is not None
    client = connect(location)
    assert isinstance(client, Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert pool.service_name == "jarvis"
    assert pool.connection_kwargs["username"] == "triage"
    assert pool.connection_kwargs["password"] == "master-pw"
    sentinel = client.sentinel_manager.sentinels[0]  # type: ignore[attr-defined]
    kwargs = sentinel.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("watcher", "sentinel-pw")
    assert (kwargs["host"], kwargs["port"]) == ("127.0.0.1", 26379)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL"),
        ({"REDIS_SENTINELS": "127.0.0.1:notaport"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "127.0.0.1:70000"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": " , "}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "::1:26379"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "h:1", "REDIS_SENTINEL_MASTER": " "}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINELS": "h:1", "REDIS_URL": "unix:///tmp/r.sock"}, "REDIS_URL"),
        ({"REDIS_SENTINELS": "h:1", "REDIS_URL": "redis+sentinel://h:1/m"}, "REDIS_SENTINELS"),
        ({"REDIS_URL": "redis+sentinel://h:1"}, "REDIS_URL"),
        ({"REDIS_URL": "redis+sentinel://h:1/m/x"}, "REDIS_URL"),
        ({"REDIS_URL": "redis+sentinel://h:1/m/1/2"}, "REDIS_URL"),
        ({"REDIS_SENTINEL_PASSWORD": "pw"}, "REDIS_SENTINEL_PASSWORD"),
    ],
)
def test_a_bad_redis_setting_stops_the_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named):
        load_settings()


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (RedisConnectionError("Connection refused"), True),
        (MasterNotFoundError("No master found for 'jarvis'"), True),
        (BusyLoadingError("Redis is loading the dataset in memory"), True),
        (ReadOnlyError("You can't write against a read only replica."), True),
        (ResponseError("READONLY You can't write against a read only replica."), True),
        (ResponseError("MASTERDOWN Link with MASTER is down"), True),
        (ResponseError("NOREPLICAS Not enough good replicas to write."), True),
        (
            ResponseError(
                "UNBLOCKED force unblock from blocking operation, instance state changed "
                "(master -> replica?)"
            ),
            True,
        ),
        (ConnectionResetError(104, "reset"), True),
        # Redis 6.2 wraps the error of a command a script called (7.x answers READONLY).
        (
            ResponseError(
                "Error running script (call to f_0123): @user_script:3: @user_script: 3: "
                "-READONLY You can't write against a read only replica."
            ),
            True,
        ),
        (
            ResponseError(
                "Error running script (call to f_0123): @user_script:3: @user_script: 3: "
                "-WRONGTYPE Operation against a key holding the wrong kind of value"
            ),
            False,
        ),
        (ResponseError("NOGROUP No such key 'jarvis:alerts' or consumer group"), False),
        (ResponseError("WRONGTYPE Operation against a key holding the wrong kind"), False),
        (ValueError("not redis"), False),
    ],
)
def test_which_errors_mean_redis_is_unavailable(error: Exception, unavailable: bool) -> None:
    assert is_unavailable(error) is unavailable
