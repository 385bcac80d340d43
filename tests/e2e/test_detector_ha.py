"""Detector HA with kill -9 (issue 16): two real detector processes, each as the `detector`
Redis user of deploy/redis/users.acl.template. Both accept alerts (active-active ingest);
one holds the prober lease and probes a target that fails. The prober is killed with
SIGKILL: the other takes over within 2 probe intervals, and the failing target's alert is
not announced again. Probe intervals of 1 s keep it to seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync

from services.detector.lease import LEASE
from shared.cluster import LocalCluster, ServiceProcess
from shared.embedded_redis import free_port
from shared.envelope import AlertAdmission
from shared.keys import Signer
from tests.e2e.test_redis_acl import _url, _wait, acl_redis

pytestmark = pytest.mark.e2e

__all__ = ["acl_redis"]  # the fixture, used here by name

TOKEN = "ha-test-operator-token"
ENVELOPE_KEY = "ha-test-envelope-key-0123456789abcdef"
INTERVAL_S = 1.0


def _detector(cluster: LocalCluster, n: int, redis_url: str) -> ServiceProcess:
    replica = ServiceProcess(
        name="detector",
        port=free_port(),
        env={**cluster.env(), "REDIS_URL": redis_url},
        log_path=cluster.workdir / f"detector-{n}.log",
    )
    replica.env["JARVIS_HTTP_PORT"] = str(replica.port)
    cluster.services[f"detector-{n}"] = replica
    replica.start()
    return replica


def _health(replica: ServiceProcess) -> dict[str, Any]:
    answer = httpx.get(f"{replica.url}/health", headers=replica.auth(), timeout=2)
    return dict(answer.json()["services"]["detector"])


def _target_alerts(admin: redis_sync.Redis) -> list[tuple[dict[str, Any], bool]]:
    """The probe's alerts on jarvis:alerts, each with whether its seal is the detector's."""
    admission = AlertAdmission(Signer(ENVELOPE_KEY))
    return [
        (data, admission.sealed(fields))
        for _, fields in admin.xrange("jarvis:alerts")
        if (data := json.loads(fields[b"__data__"])).get("service") == "ha-target"
    ]


def test_the_other_detector_takes_over_probing_within_two_intervals_after_kill_9(
    acl_redis: tuple[int, dict[str, str]], tmp_path: Path
) -> None:
    port, passwords = acl_redis
    admin = redis_sync.Redis.from_url(_url(port, "admin", passwords["admin"]))
    closed = f"http://127.0.0.1:{free_port()}/health"  # nothing listens: the probe fails
    off = {
        f"JARVIS_DETECTOR__{probe}__ENABLED": "false"
        for probe in ("BACKEND", "OLLAMA", "POSTGRES", "REDIS", "DOCKER", "LOGS", "HOST")
    }
    env = {
        **off,
        "JARVIS_API_TOKEN": TOKEN,
        "JARVIS_ENVELOPE_KEY": ENVELOPE_KEY,
        "JARVIS_DETECTOR__PROMETHEUS__ENABLED": "false",
        "JARVIS_DETECTOR__GRAFANA__ENABLED": "false",
        "JARVIS_DETECTOR__PROBE_INTERVAL_S": str(INTERVAL_S),
        "JARVIS_DETECTOR__PROBE_TIMEOUT_S": "0.5",
        "JARVIS_DETECTOR__FIRE_AFTER": "1",
        "JARVIS_DETECTOR__HTTP_TARGETS": json.dumps(
            [{"name": "ha-target", "url": closed, "service": "ha-target"}]
        ),
    }
    detector_url = _url(port, "detector", passwords["detector"])
    with LocalCluster(
        tmp_path / "cluster", extra_env=env, external_redis_url=_url(port, "admin", "-")
    ) as cluster:
        first = _detector(cluster, 1, detector_url)
        _wait(lambda: _health(first)["prober"], "the first detector holds the prober lease")
        second = _detector(cluster, 2, detector_url)
        fired = _wait(lambda: _target_alerts(admin), "the failing target's alert", 10)
        assert [(a["status"], sealed) for a, sealed in fired] == [("firing", True)]
        assert _health(second)["prober"] is False  # exactly one prober

        # Active-active ingest: either replica accepts alerts.
        for replica in (first, second):
            answer = httpx.post(
                f"{replica.url}/api/v1/alerts",
                json={"service": "backend", "check": f"ingest-{replica.port}"},
                headers=replica.auth(),
                timeout=5,
            )
            assert answer.status_code == 202, answer.text

        term_before = admin.get(LEASE)
        first.kill()  # SIGKILL: no shutdown, the lease is not released
        killed_at = time.monotonic()
        while not _health(second)["prober"]:
            assert time.monotonic() - killed_at <= 2 * INTERVAL_S, "no takeover in 2 intervals"
            time.sleep(0.02)
        took_over_s = time.monotonic() - killed_at
        term_after = admin.get(LEASE)
        assert term_after != term_before
        assert int(term_after.split(b":")[0]) > int(term_before.split(b":")[0])  # a new epoch

        # The new prober probes (the target still fails), and says nothing new about it.
        def probed() -> bool:
            checks = _health(second)["probes"].get("ha-target", {}).get("checks", {})
            return bool(checks) and checks["ha-target/http"]["firing"] is True

        _wait(probed, "the second detector probed the target")
        time.sleep(3 * INTERVAL_S)
        assert [a["status"] for a, _ in _target_alerts(admin)] == ["firing"], "no duplicate"
        print(f"takeover after kill -9: {took_over_s:.2f} s (probe interval {INTERVAL_S:g} s)")
        denied = [entry for entry in admin.acl_log() if entry.get("username") != "default"]
        assert denied == [], denied
