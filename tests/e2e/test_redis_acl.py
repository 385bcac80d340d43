"""Every service against its own Redis user (issue 18, finding 4): deploy/redis/start.sh renders
deploy/redis/users.acl.template, the five services run as separate processes, each with its
user, and a whole incident goes through them: alerts over HTTP, PagerDuty and XADD, triage's
playbook, the remediator's answers and an approved FLUSHDB, an escalation, operator commands.
Redis' ACL LOG must stay empty (a permission the code needs and the template lacks shows up
there, and as a failed step), and each user is refused what is not its own.

Bounded: loopback only, a handful of events, every wait with a deadline.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync

from shared.cluster import LocalCluster, wait_until
from shared.embedded_redis import find_redis_server, free_port
from tests.conftest import require

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
USERS = ("detector", "triage", "remediator", "escalator", "recorder", "ingest", "admin")
TOKEN = "acl-test-operator-token"
PD_KEY = "ACLTESTROUTINGKEY000000000000001"


def _redis_major(binary: str) -> int:
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return int(version.split("v=", 1)[1].split(".", 1)[0])


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """redis-server started by deploy/redis/start.sh, as compose starts it."""
    binary = find_redis_server()
    require(
        _redis_major(binary) >= 7,
        f"the ACL file uses selectors (Redis 7); {binary} is older: apt-get install redis-server",
    )
    passwords = {user: secrets.token_hex(12) for user in USERS}
    port = free_port()
    env = {
        "PATH": f"{Path(binary).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "JARVIS_IR_REDIS_ACL_FILE": str(tmp_path / "users.acl"),
        **{f"JARVIS_IR_REDIS_{u.upper()}_PASSWORD": p for u, p in passwords.items()},
    }
    log = (tmp_path / "redis.log").open("wb")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        ["sh", str(ROOT / "deploy/redis/start.sh"), *args, "--dir", str(tmp_path)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis_sync.Redis(port=port, protocol=2).ping()
                break
            except redis_sync.RedisError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "redis.log").read_text()) from None
                time.sleep(0.05)
        assert oct((tmp_path / "users.acl").stat().st_mode & 0o777) == "0o600"
        yield port, passwords
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _url(port: int, user: str, password: str, db: int = 0) -> str:
    return f"redis://{user}:{password}@127.0.0.1:{port}/{db}"


def _wait(check: Any, what: str, timeout: float = 30.0) -> Any:
    return wait_until(check, timeout, what)


def test_every_service_runs_with_its_own_redis_user_and_no_more(
    acl_redis: tuple[int, dict[str, str]], tmp_path: Path
) -> None:
    port, passwords = acl_redis
    admin = redis_sync.Redis.from_url(_url(port, "admin", passwords["admin"]))
    target = redis_sync.Redis.from_url(_url(port, "admin", passwords["admin"], db=9))
    target.set("jarvis:cache", "1")
    common = {
        "JARVIS_API_TOKEN": TOKEN,
        "JARVIS_CONSUMER__BLOCK_MS": "100",
        "JARVIS_CONSUMER__GROUP_CHECK_S": "0.5",
        "JARVIS_DETECTOR__PROBES_ENABLED": "false",
        "JARVIS_DETECTOR__PAGERDUTY_ROUTING_KEYS": json.dumps([PD_KEY]),
        "JARVIS_REMEDIATOR__ENABLED": "true",
        "JARVIS_REMEDIATOR__ENABLED_ACTIONS": '["redis.flushdb"]',
        "JARVIS_REMEDIATOR__ALLOWED_TARGETS": '["jarvis-redis"]',
        "JARVIS_REMEDIATOR__REDIS_TARGETS": json.dumps(
            {"jarvis-redis": {"url": _url(port, "admin", passwords["admin"], db=9)}}
        ),
        "JARVIS_REMEDIATOR__TICK_S": "0.2",
        # Level 3 (data loss) reaches whoever is on call: the escalator reads the overrides.
        "JARVIS_ESCALATOR__SCHEDULES": json.dumps(
            {"primary": {"members": ["oncall-acl@example.org"]}}
        ),
        "JARVIS_ESCALATOR__LEVELS__LEVEL_3__CONTACTS": '["schedule:primary"]',
    }
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with LocalCluster(
        tmp_path / "cluster", extra_env=common, external_redis_url=_url(port, "admin", "-")
    ) as cluster:
        for name in ("recorder", "triage", "remediator", "escalator", "detector"):
            cluster.add(name, REDIS_URL=_url(port, name, passwords[name]))
        detector = cluster.services["detector"].url
        recorder = cluster.services["recorder"].url
        with httpx.Client(timeout=10, headers=auth) as http:
            # Operators' state in Redis: a silence (triage and the remediator read it) and an
            # on-call override (the escalator reads it).
            now = datetime.now(UTC)
            silence = http.post(
                f"{recorder}/api/v1/silences",
                json={
                    "matchers": [
                        {"name": "service", "value": "grafana", "isRegex": False, "isEqual": True}
                    ],
                    "starts_at": now.isoformat(),
                    "ends_at": (now + timedelta(hours=1)).isoformat(),
                    "comment": "ACL test",
                    "created_by": "alice",
                },
            )
            assert silence.status_code == 201, silence.text
            override = http.post(
                f"{recorder}/api/v1/schedules/primary/overrides",
                json={
                    "person": "oncall-acl@example.org",
                    "starts_at": now.isoformat(),
                    "ends_at": (now + timedelta(hours=2)).isoformat(),
                    "by": "alice",
                },
            )
            assert override.status_code == 201, override.text
            assert http.get(f"{recorder}/api/v1/oncall").status_code == 200
            sent = http.post(
                f"{detector}/api/v1/alerts",
                json={
                    "service": "backend",
                    "check": "health",
                    "summary": "backend /health times out",
                    "impact": "high",
                    "urgency": "high",
                    "data_loss": True,
                },
            )
            assert sent.status_code == 202, sent.text
            pd = {
                "routing_key": PD_KEY,
                "event_action": "trigger",
                "dedup_key": "acl-1",
                "payload": {"summary": "Ollama down", "source": "h", "severity": "error"},
            }
            assert http.post(f"{detector}/webhooks/pagerduty", json=pd).status_code == 202
            ingest = redis_sync.Redis.from_url(_url(port, "ingest", passwords["ingest"]))
            ingest.xadd("jarvis:alerts", {"service": "grafana", "check": "ui", "summary": "x"})

            def incidents() -> list[dict[str, Any]]:
                return list(http.get(f"{recorder}/api/v1/incidents").json())

            # The XADDed grafana alert is silenced: triage read the silence and opened nothing.
            _wait(lambda: len(incidents()) >= 2, "two incidents recorded")
            assert (
                http.post(
                    f"{detector}/webhooks/pagerduty", json={**pd, "event_action": "acknowledge"}
                ).status_code
                == 202
            )
            (backend,) = [i for i in incidents() if i["service"] == "backend"]
            note = http.post(
                f"{recorder}/api/v1/incidents/{backend['id']}/notes", json={"text": "on it"}
            )
            assert note.status_code == 202
            # A dangerous action, as triage would request it, approved by an operator.
            request_id = "acl-flush-1"
            admin.xadd(
                "jarvis:actions:requested",
                {
                    "__data__": json.dumps(
                        {
                            "event_type": "ActionRequested",
                            "producer": "triage",
                            "incident_id": backend["id"],
                            "action_id": request_id,
                            "action": "redis.flushdb",
                            "target": "jarvis-redis",
                        }
                    )
                },
            )

            def approved() -> bool:
                answer = http.post(
                    f"{recorder}/api/v1/actions/{request_id}/approve",
                    json={"by": "alice", "action": "redis.flushdb"},
                )
                return answer.status_code == 202

            _wait(approved, "the approval accepted")
            _wait(lambda: target.dbsize() == 0, "FLUSHDB run after the approval")

            def timeline_types() -> set[str]:
                entries = http.get(f"{recorder}/api/v1/incidents/{backend['id']}/timeline")
                return {e["event_type"] for e in entries.json()}

            wanted = {
                "AlertRaised",
                "SeverityAssigned",
                "ActionRequested",
                "ActionCompleted",
                "EscalationDue",
                "NoteAdded",
                "ActionApproved",
            }
            _wait(lambda: wanted <= timeline_types(), f"{sorted(wanted)} on the timeline")
            acks = [
                e
                for e in admin.xrange("jarvis:incidents")
                if b"IncidentAcknowledged" in e[1].get(b"__data__", b"")
            ]
            assert acks, "the PagerDuty acknowledgement reached jarvis:incidents"
            assert admin.xlen("jarvis:dead-letter") == 0
            # Garbage on a stream four services read: each group dead-letters it with its
            # own script call (record, marker, XACK), under its own user.
            garbage = admin.xadd("jarvis:incidents", {"foo": "bar"})
            groups = ("triage", "remediator", "escalator", "recorder")

            def garbage_settled() -> bool:
                delivered = {
                    g["name"].decode(): g["last-delivered-id"]
                    for g in admin.xinfo_groups("jarvis:incidents")
                }
                return admin.xlen("jarvis:dead-letter") == 1 and all(
                    delivered.get(g) == garbage
                    and admin.xpending_range("jarvis:incidents", g, garbage, garbage, 1) == []
                    for g in groups
                )

            _wait(garbage_settled, "the garbage entry dead-lettered by every group")
        denied = [entry for entry in admin.acl_log() if entry.get("username") != "default"]
        assert denied == [], denied

    # Each user is refused what is not its own.
    refusals = {
        "detector": lambda r: r.xadd("jarvis:actions:requested", {"x": "1"}),
        # A consumer may not write into the streams it reads, nor touch others' state.
        "triage": lambda r: r.xadd("jarvis:actions:completed", {"x": "1"}),
        "remediator": lambda r: r.xadd("jarvis:actions:requested", {"x": "1"}),
        "escalator": lambda r: r.xadd("jarvis:severity", {"x": "1"}),
        "recorder": lambda r: r.xadd("jarvis:actions:requested", {"x": "1"}),
        "recorder-state": lambda r: r.set("jarvis:remediator:pending", "x"),
        "detector-fp": lambda r: r.set("jarvis:triage:fp:x", "incident-of-mine"),
        "ingest": lambda r: r.xadd("jarvis:incidents", {"x": "1"}),
    }
    for name, forbidden in refusals.items():
        user = name.split("-")[0]
        client = redis_sync.Redis.from_url(_url(port, user, passwords[user]))
        with pytest.raises(redis_sync.exceptions.NoPermissionError):
            forbidden(client)
        with pytest.raises(redis_sync.exceptions.NoPermissionError):
            client.flushall()
    anonymous = redis_sync.Redis(port=port, protocol=2)
    assert anonymous.ping()
    with pytest.raises(redis_sync.exceptions.NoPermissionError):
        anonymous.xadd("jarvis:alerts", {"service": "x"})
