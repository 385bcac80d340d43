"""Faults, with the services as separate processes: nothing lost, nothing done twice.

Bounded: loopback only, at most a few thousand events, every wait with a deadline.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import redis as redis_sync

from shared.access import ANONYMOUS
from shared.cluster import LocalCluster
from shared.envelope import owned_event_id
from shared.events import AlertRaised
from shared.streams import ALERTS, DEAD_LETTER
from tests.conftest import require
from tests.e2e.faults_support import ALL_GROUPS, FAST, PostgresCluster, query, wait_drained
from tests.helpers import stream_id

pytestmark = pytest.mark.e2e

PIPELINE: dict[str, tuple[str, ...]] = {
    "jarvis:alerts": ("triage", "recorder"),
    "jarvis:severity": ("recorder",),
    "jarvis:incidents": ("recorder",),
}


def _alerts(count: int, run: str) -> list[AlertRaised]:
    return [
        AlertRaised(
            service=f"svc{i % 10}",
            check=f"{run}-{i}",
            summary=f"fault test alert {i}",
            impact="medium",
            urgency="low",
        )
        for i in range(count)
    ]


async def _linked_alerts(database_url: str) -> dict[str, str | None]:
    rows = await query(
        database_url, "SELECT event_id, incident_id FROM events WHERE event_type = 'AlertRaised'"
    )
    return dict(rows)


def test_kill_9_each_service_while_1000_alerts_flow(tmp_path: Path) -> None:
    alerts = _alerts(1000, "kill")
    accepted: list[str] = []
    with LocalCluster(tmp_path, extra_env=FAST) as cluster:
        for name in ("detector", "triage", "recorder", "remediator", "escalator"):
            cluster.add(name)
        detector = cluster.services["detector"]
        done = threading.Event()

        def send() -> None:
            with httpx.Client(timeout=5) as client:
                for start in range(0, len(alerts), 10):
                    body = [json.loads(a.to_json()) for a in alerts[start : start + 10]]
                    deadline = time.monotonic() + 60
                    while True:  # a killed detector refuses: send the same batch again
                        try:
                            resp = client.post(f"{detector.url}/api/v1/alerts", json=body)
                            if resp.status_code == 202:
                                accepted.extend(resp.json()["event_ids"])
                                break
                        except httpx.HTTPError:
                            pass
                        assert time.monotonic() < deadline, "detector never came back"
                        time.sleep(0.1)
                    time.sleep(0.02)
            done.set()

        sender = threading.Thread(target=send)
        sender.start()
        for name in ("triage", "recorder", "remediator", "escalator", "detector"):
            time.sleep(0.8)
            cluster.services[name].kill()
            time.sleep(0.3)
            cluster.services[name].start()
        sender.join(timeout=120)
        assert done.is_set()
        redis = redis_sync.Redis.from_url(cluster.redis_url)
        wait_drained(redis, ALL_GROUPS, timeout_s=120)
        completions = [
            json.loads(fields[b"__data__"])
            for _, fields in redis.xrange("jarvis:actions:completed")
        ]
        dead = redis.xlen(DEAD_LETTER)
        database_url = cluster.env()["DATABASE_URL"]
        import asyncio

        linked = asyncio.run(_linked_alerts(database_url))
        stored_completions = asyncio.run(
            query(
                database_url,
                "SELECT action_id, count(*) FROM events WHERE event_type = 'ActionCompleted' "
                "GROUP BY action_id",
            )
        )
    # The detector stores each under the server's id: the sender's, within its integration.
    assert sorted(accepted) == sorted(owned_event_id(ANONYMOUS, a.event_id) for a in alerts)
    assert set(linked) == set(accepted), "every accepted alert is on the timeline"
    assert all(linked.values()), "each one in an incident"
    assert dead == 0
    # No action ran twice: every completion of one action is the same event, republished.
    by_action: dict[str, set[str]] = defaultdict(set)
    for completion in completions:
        by_action[completion["action_id"]].add(
            json.dumps({k: completion[k] for k in ("event_id", "duration_ms", "detail")})
        )
    assert completions, "the playbooks ran"
    assert all(len(versions) == 1 for versions in by_action.values()), by_action
    assert all(count == 1 for _, count in stored_completions)


def test_redis_restart_loses_no_acknowledged_alert_and_lost_groups_come_back(
    tmp_path: Path,
) -> None:
    with LocalCluster(tmp_path, extra_env=FAST) as cluster:
        cluster.add("triage")
        cluster.add("recorder")
        redis = redis_sync.Redis.from_url(cluster.redis_url)
        database_url = cluster.env()["DATABASE_URL"]
        batches = [_alerts(150, f"r{n}") for n in range(3)]

        def publish(alerts: list[AlertRaised]) -> None:
            client = redis_sync.Redis.from_url(cluster.redis_url)
            pipe = client.pipeline(transaction=False)
            for alert in alerts:
                pipe.xadd(ALERTS.key, {"__data__": alert.to_json()})
            pipe.execute()
            client.close()

        publish(batches[0])
        wait_drained(redis, PIPELINE, timeout_s=60)
        # 1. A clean restart: append-only persistence keeps streams and groups.
        assert cluster.redis
        cluster.redis.stop()
        cluster.start_redis()
        publish(batches[1])
        wait_drained(redis, PIPELINE, timeout_s=60)
        # 2. Redis comes back empty (data lost): groups are gone, and must be recreated.
        cluster.redis.stop()
        shutil.rmtree(cluster.redis.data_dir)
        cluster.start_redis()
        time.sleep(1.0)
        publish(batches[2])
        wait_drained(redis, PIPELINE, timeout_s=60)
        groups = {g["name"].decode() for g in redis.xinfo_groups(ALERTS.key)}
        import asyncio

        linked = asyncio.run(_linked_alerts(database_url))
    assert {"triage", "recorder"} <= groups
    missing = [len({stream_id(a.event_id) for a in batch} - set(linked)) for batch in batches]
    assert missing == [0, 0, 0], missing
    expected = {stream_id(a.event_id) for batch in batches for a in batch}
    assert expected <= set(linked)
    assert all(linked[e] for e in expected)


# The retry budget compressed as far as it goes: a failing entry is reclaimed after 0.3 s
# and dead-lettered after 3 failures. A dependency that is down must not count at all.
COMPRESSED = {
    **FAST,
    "JARVIS_CONSUMER__RECLAIM_IDLE_MS": "300",
    "JARVIS_CONSUMER__MAX_DELIVERIES": "3",
}
OUTAGE_S = 30.0


async def test_postgresql_down_longer_than_the_retry_budget_loses_no_alert(
    tmp_path: Path,
) -> None:
    pg = PostgresCluster()
    require(pg.available, "PostgreSQL server binaries (apt-get install postgresql)")
    pg.init()
    try:
        cluster = LocalCluster(tmp_path / "cluster", database_url=pg.url, extra_env=COMPRESSED)
        with cluster:
            cluster.add("triage")
            cluster.add("recorder")
            redis = redis_sync.Redis.from_url(cluster.redis_url)
            before = _alerts(50, "before")
            during = _alerts(100, "during")
            for alert in before:
                redis.xadd(ALERTS.key, {"__data__": alert.to_json()})
            wait_drained(redis, PIPELINE, timeout_s=60)

            pg.stop()
            outage_ends = time.monotonic() + OUTAGE_S
            pending_seen = 0
            for alert in during:  # alerts keep arriving while PostgreSQL is down
                redis.xadd(ALERTS.key, {"__data__": alert.to_json()})
                info = {g["name"].decode(): g for g in redis.xinfo_groups(ALERTS.key)}
                pending_seen = max(pending_seen, int(info["recorder"]["pending"]))
                time.sleep(OUTAGE_S / 2 / len(during))  # noqa: ASYNC251 - nothing else runs here
            time.sleep(max(0.0, outage_ends - time.monotonic()))  # noqa: ASYNC251
            assert redis.xlen(DEAD_LETTER) == 0  # far past the budget, and nothing given up
            # Nothing was acknowledged: the recorder could not commit.
            assert pending_seen > 0
            info = {g["name"].decode(): g for g in redis.xinfo_groups(ALERTS.key)}
            # Not acknowledged: pending, or not even delivered (read by id: Redis 6.2 has no lag).
            unread = redis.xrange(
                ALERTS.key, min=f"({info['recorder']['last-delivered-id'].decode()}"
            )
            assert info["recorder"]["pending"] + len(unread) >= len(during)
            pg.start()
            wait_drained(redis, PIPELINE, timeout_s=60)
            assert redis.xlen(DEAD_LETTER) == 0
            linked = await _linked_alerts(pg.url)
        expected = {stream_id(a.event_id) for a in before + during}
        assert expected <= set(linked), "every alert is in a timeline"
        assert all(linked[e] for e in expected)
    finally:
        pg.destroy()
