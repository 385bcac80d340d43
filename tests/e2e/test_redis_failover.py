"""Redis failover under Sentinel while alerts flow (issue 16).

A master, one replica and three sentinels (Debian's redis-server and redis-sentinel) on
loopback ports, every service a process of its own pointed at the sentinels. Alerts are
posted to the detector without pause; the master is killed with SIGKILL; the sentinels
promote the replica. Then every service must be on the new master: alerts posted after
the failover reach triage (an incident) and the recorder (its timeline), every consumer
group exists on the new master and every stream is drained there (the escalator's and
triage's Lua scripts ran again on a server that had never loaded them).

Reported, and held to bounds: how many alerts accepted before the kill were lost
(replication is asynchronous: allowed, but counted), how long and how often ingest
answered 5xx, the slowest answer, and how long the promotion took.

Bounded: about 30 s on this machine; every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis as redis_sync

from shared.cluster import LocalCluster, wait_until
from tests.conftest import require
from tests.e2e.faults_support import ALL_GROUPS, FAST, query, wait_drained
from tests.e2e.sentinel_support import SentinelSet

pytestmark = pytest.mark.e2e

FOLLOW_S = 2.0  # follow_master asks every second; a busy connection moves when released
FLOWING = {k: ALL_GROUPS[k] for k in ("jarvis:alerts", "jarvis:severity", "jarvis:incidents")}


@dataclass(frozen=True)
class Post:
    sent: float  # time.monotonic() when the request left
    answered: float
    status: int | None  # None: refused or timed out
    event_ids: tuple[str, ...]


class Sender(threading.Thread):
    """Posts one alert per request to the detector until told to stop."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.posts: list[Post] = []
        self.halt = threading.Event()

    def run(self) -> None:
        n = 0
        with httpx.Client(timeout=10) as client:
            while not self.halt.is_set():
                n += 1
                alert = {
                    "service": f"svc{n % 10}",
                    "check": f"failover-{n}",
                    "summary": f"failover test alert {n}",
                    "impact": "medium",
                    "urgency": "low",
                }
                sent = time.monotonic()
                try:
                    resp = client.post(f"{self.url}/api/v1/alerts", json=alert)
                    ids = tuple(resp.json().get("event_ids", ())) if resp.is_success else ()
                    post = Post(sent, time.monotonic(), resp.status_code, ids)
                except httpx.HTTPError:
                    post = Post(sent, time.monotonic(), None, ())
                self.posts.append(post)
                time.sleep(0.02)

    def accepted_since(self, moment: float) -> int:
        return sum(1 for p in self.posts if p.sent > moment and p.status == 202)


async def _stored_alerts(database_url: str) -> dict[str, str | None]:
    rows = await query(
        database_url, "SELECT event_id, incident_id FROM events WHERE event_type = 'AlertRaised'"
    )
    return dict(rows)


def _role(redis_set: SentinelSet, port: int) -> str | None:
    try:
        with redis_set.client(port) as client:
            return str(client.info("replication")["role"])
    except (redis_sync.RedisError, OSError):
        return None


@pytest.mark.parametrize("fault", ["kill", "demote"])
def test_services_follow_a_sentinel_failover_while_alerts_flow(tmp_path: Path, fault: str) -> None:
    """`kill`: SIGKILL of the master. `demote`: SENTINEL FAILOVER with the old master alive,
    so the services' open connections meet a server that turns replica (READONLY,
    UNBLOCKED) rather than a closed socket."""
    missing = SentinelSet.available()
    require(missing is None, f"{missing}: apt-get install redis-server redis-sentinel")
    redis_set = SentinelSet(tmp_path / "redis")
    redis_set.workdir.mkdir(parents=True)
    started = time.monotonic()
    redis_set.start()
    try:
        old_master, replica = redis_set.data_ports
        env = {
            **FAST,
            "JARVIS_CONSUMER__RETRY_MAX_S": "1",
            "REDIS_SENTINEL_PASSWORD": redis_set.sentinel_password,
        }
        with LocalCluster(
            tmp_path / "cluster", extra_env=env, external_redis_url=redis_set.url()
        ) as cluster:
            for name in ("recorder", "triage", "escalator", "remediator"):
                cluster.add(name)  # REDIS_URL=redis+sentinel://…
            # The other way to say it: the sentinels apart, REDIS_URL only for the password.
            hosts = ",".join(f"127.0.0.1:{p}" for p in redis_set.sentinel_ports)
            detector = cluster.add(
                "detector",
                REDIS_URL=f"redis://:{redis_set.password}@unused/0",
                REDIS_SENTINELS=hosts,
                REDIS_SENTINEL_MASTER=redis_set.master_name,
            )
            database_url = cluster.env()["DATABASE_URL"]
            sender = Sender(detector.url)
            sender.start()
            try:
                wait_until(lambda: sender.accepted_since(0) >= 50, 20, "50 alerts accepted")
                fault_at = time.monotonic()
                if fault == "kill":
                    redis_set.kill(old_master)
                else:
                    with redis_set.sentinel_client(redis_set.sentinel_ports[0]) as sentinel:
                        sentinel.execute_command("SENTINEL", "FAILOVER", redis_set.master_name)
                wait_until(
                    lambda: redis_set.master_port() == replica, 20, "the replica's promotion"
                )
                promoted_at = time.monotonic()
                if fault == "demote":  # from here on no write can land on the old master
                    wait_until(lambda: _role(redis_set, old_master) == "slave", 20, "the demotion")
                settled_at = max(time.monotonic(), promoted_at + FOLLOW_S)
                wait_until(
                    lambda: sender.accepted_since(settled_at) >= 50,
                    30,
                    "50 alerts accepted after the failover\n" + detector.log_tail(),
                )
            finally:
                sender.halt.set()
                sender.join(timeout=15)
            new_master = redis_set.client(replica)
            wait_drained(new_master, FLOWING, timeout_s=30)
            groups = {
                stream: {g["name"].decode() for g in new_master.xinfo_groups(stream)}
                for stream in ALL_GROUPS
            }
            # The Lua scripts ran on a server that had never loaded them (redis-py's Script
            # reloads after NOSCRIPT).
            scripts = new_master.info("commandstats").get("cmdstat_evalsha", {})
            noscript = new_master.info("errorstats").get("errorstat_NOSCRIPT", {})
            on_bus = {
                json.loads(fields[b"__data__"])["event_id"]
                for _, fields in new_master.xrange("jarvis:alerts")
            }
            stored = asyncio.run(_stored_alerts(database_url))
            logs = {name: s.log_tail(10**6) for name, s in cluster.services.items()}
    finally:
        redis_set.stop()
    elapsed = time.monotonic() - started

    posts = sender.posts
    accepted = [p for p in posts if p.status == 202]
    # After the promotion each process moves within FOLLOW_S (shared.redis_client.
    # follow_master); from then on every accepted alert must be on the new master.
    moved_at = promoted_at + FOLLOW_S
    before = [p for p in accepted if p.answered < fault_at]
    during = [p for p in accepted if p.answered >= fault_at and p.sent <= moved_at]
    after = [p for p in accepted if p.sent > moved_at]

    def lost(group: list[Post]) -> list[str]:
        """Accepted, but not on the new master's jarvis:alerts."""
        return [i for p in group for i in p.event_ids if i not in on_bus]

    def unrecorded(group: list[Post]) -> list[str]:
        return [i for p in group for i in p.event_ids if i not in stored]

    failed = [p for p in posts if p.status != 202 and p.sent > fault_at - 1]
    window = (max(p.answered for p in failed) - fault_at) if failed else 0.0
    figures = {
        "fault": fault,
        "accepted_before": len(before),
        "lost_before": len(lost(before)),
        "accepted_during": len(during),
        "lost_during": len(lost(during)),
        "accepted_after": len(after),
        "lost_after": len(lost(after)),
        "not_on_timeline": len(unrecorded(accepted)),
        "answers_5xx": sum(1 for p in failed if p.status is not None),
        "refused_or_timed_out": sum(1 for p in failed if p.status is None),
        "statuses": sorted({p.status or 0 for p in posts}),
        "promotion_s": round(promoted_at - fault_at, 2),
        "ingest_unavailable_s": round(window, 2),
        "slowest_answer_s": round(max(p.answered - p.sent for p in posts), 2),
        "evalsha_on_new_master": int(scripts.get("calls", 0)),
        "noscript_reloads": int(noscript.get("count", 0)),
        "test_s": round(elapsed, 1),
    }
    print("failover figures:", json.dumps(figures))
    context = f"{figures}\n" + "\n".join(f"== {n}\n{t[-1500:]}" for n, t in logs.items())

    # Every service found the new master: the groups are there, the alerts went through.
    for stream, names in ALL_GROUPS.items():
        assert set(names) <= groups[stream], (stream, groups[stream], context)
    assert lost(after) == [], context
    assert unrecorded(after) == [], context
    assert all(stored[i] for p in after for i in p.event_ids), "each in an incident"
    assert figures["evalsha_on_new_master"] > 0, context
    # Async replication may lose what the old master had not yet sent to the replica:
    # allowed, counted, on loopback at most the last moments before the fault. A master
    # demoted alive also takes writes until the promotion and until each process moves
    # (`during`): those are lost too, counted, and confined to that window.
    assert len(lost(before)) <= 5, context
    # What the recorder missed is what the bus lost, nothing else.
    assert set(unrecorded(accepted)) <= set(lost(accepted)), context
    # Ingest said 503 (never 500) while there was no master, and not for long.
    assert set(figures["statuses"]) <= {202, 503}, context
    assert figures["refused_or_timed_out"] == 0, context
    assert window < 20, context
    assert figures["promotion_s"] < 15, context
    # A failover is an outage the services wait out, not a crash: no error, no traceback.
    errors = {n: [ln for ln in t.splitlines() if " ERROR " in ln] for n, t in logs.items()}
    assert not any(errors.values()), errors
