"""kill -9 the escalator replica that is delivering a page: another replica delivers it,
exactly once, within the dead replica's lease (issue 13 case 2).

A webhook receiver on loopback holds the first request open, so the test knows which
replica is mid-delivery (each replica sends its own `X-Replica` header) and kills it.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync

from shared.cluster import LocalCluster, ServiceProcess, wait_until
from shared.embedded_redis import free_port
from shared.streams import DEAD_LETTER, ESCALATIONS, INCIDENTS
from tests.integration._escalator_support import escalation_due, http_receiver

pytestmark = pytest.mark.e2e

TIMEOUT_S = 3.0  # one try's timeout; the lease is 2 × 3 + 5 = 11 s
LEASE_S = 2 * TIMEOUT_S + 5
RECLAIM_S = 1.5


def test_kill_9_the_replica_delivering_a_page(tmp_path: Path) -> None:
    env = {
        "JARVIS_CONSUMER__BLOCK_MS": "100",
        "JARVIS_CONSUMER__RECLAIM_IDLE_MS": str(int(RECLAIM_S * 1000)),
        "JARVIS_CONSUMER__GROUP_CHECK_S": "0.5",
        "JARVIS_ESCALATOR__TICK_S": "0.2",
        "JARVIS_ESCALATOR__LEVELS__LEVEL_2__CHANNELS": '["webhook"]',
        "JARVIS_ESCALATOR__NOTIFIER__RETRY__TIMEOUT_S": str(TIMEOUT_S),
    }
    page = escalation_due(f"inc-{uuid.uuid4().hex[:8]}", level=2)
    # The first request is held open (never answered while the test runs); the rest: 200.
    with http_receiver(delays=[120]) as receiver, LocalCluster(tmp_path, extra_env=env) as cluster:
        for name in ("a", "b"):
            replica = ServiceProcess(
                name="escalator",
                port=free_port(),
                env={
                    **cluster.env(),
                    "JARVIS_ESCALATOR__NOTIFIER__WEBHOOK__URL": receiver.url,
                    "JARVIS_ESCALATOR__NOTIFIER__WEBHOOK__HEADERS": json.dumps({"X-Replica": name}),
                },
                log_path=tmp_path / f"escalator-{name}.log",
            )
            replica.env["JARVIS_HTTP_PORT"] = str(replica.port)
            cluster.services[f"escalator-{name}"] = replica
            replica.start()
        redis = redis_sync.Redis.from_url(cluster.redis_url)
        redis.xadd(ESCALATIONS.key, {"__data__": page.to_json()})

        first = wait_until(lambda: list(receiver.arrived), 20, "a replica sending the page")
        sending = first[0]["X-Replica"]
        killed_at = time.monotonic()
        cluster.services[f"escalator-{sending}"].kill()

        def records() -> list[dict[str, Any]]:
            found = []
            for _, fields in redis.xrange(INCIDENTS.key):
                event = json.loads(fields[b"__data__"])
                if event.get("event_type") == "NotificationSent":
                    found.append(event)
            return found

        wait_until(lambda: receiver.requests, LEASE_S + RECLAIM_S + 10, "the page delivered")
        delivered_after = receiver.requests[0]["at"] - killed_at
        (record,) = wait_until(records, 10, "the delivery on the timeline")
        time.sleep(2.0)  # room for a second delivery to show up
        answered = list(receiver.requests)
        final_records = records()
        dead = redis.xlen(DEAD_LETTER)
    other = "b" if sending == "a" else "a"
    assert [r["headers"]["X-Replica"] for r in answered] == [other], "once, by the other"
    assert delivered_after <= LEASE_S + 2.0, f"{delivered_after:.1f} s after the kill"
    assert record["delivered"] is True
    assert record["channel"] == "webhook"
    assert len(final_records) == 1
    assert dead == 0
