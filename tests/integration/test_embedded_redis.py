"""The embedded Redis of `jarvis-ir up`: it wants a password (issue 18, finding 4: without
one, any local user could XADD an approval or an alert), and it is always the one it
started (issue 13 case 13): a port that another Redis holds is refused, never shared."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis as redis_sync

from shared.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.integration


def test_the_embedded_redis_refuses_clients_without_its_password(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    try:
        anonymous = redis_sync.Redis(port=server.port, protocol=2)
        with pytest.raises(redis_sync.exceptions.AuthenticationError):
            anonymous.xadd("jarvis:incidents", {"__data__": "{}"})
        assert redis_sync.Redis.from_url(url).ping()
        secret = tmp_path / "secrets" / "redis.password"
        assert secret.stat().st_mode & 0o777 == 0o600
        assert secret.read_text().strip() == server.password
        # Not on the command line (visible to every local user in ps).
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert server.password.encode() not in cmdline
    finally:
        server.stop()
    again = EmbeddedRedis(tmp_path)  # the next start keeps the same password
    assert again.password == server.password


def test_a_port_held_by_another_redis_is_refused_not_shared(tmp_path: Path) -> None:
    theirs = EmbeddedRedis(tmp_path / "theirs")
    url = theirs.start()
    try:
        client = redis_sync.Redis.from_url(url)
        client.set("their-key", "1")
        ours = EmbeddedRedis(tmp_path / "ours", port=theirs.port)
        with pytest.raises(RuntimeError, match=f"port {theirs.port} .* already in use"):
            ours.start()
        # Nothing of ours reached their server, and it still runs.
        assert client.get("their-key") == b"1"
        assert client.dbsize() == 1
        assert int(client.info("server")["process_id"]) == theirs.pid
        client.close()
    finally:
        theirs.stop()


def test_the_server_that_answers_is_the_child_started(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path)
    url = server.start()
    try:
        client = redis_sync.Redis.from_url(url)
        assert int(client.info("server")["process_id"]) == server.pid
        client.close()
    finally:
        server.stop()
