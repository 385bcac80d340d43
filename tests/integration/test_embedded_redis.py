"""The embedded Redis of `jarvis-ir up` is always the one it started (issue 13 case 13):
a port that another Redis holds is refused, never shared."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis as redis_sync

from shared.embedded_redis import EmbeddedRedis

pytestmark = pytest.mark.integration


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
