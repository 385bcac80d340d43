"""HTTPS (issue 18, finding 8): PagerDuty's own Python client (`pagerduty` on PyPI) accepts
only https:// base URLs, so until the server spoke TLS it could not be pointed at us at all.
Here it triggers, acknowledges and resolves against `jarvis-ir serve detector` (with triage
behind it) on https://127.0.0.1 with a certificate made in the test.

Bounded: loopback only, three events, every wait with a deadline.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pagerduty
import pytest
import redis as redis_sync

from shared.cluster import LocalCluster, wait_until
from tests.tls import self_signed

pytestmark = pytest.mark.e2e

TOKEN = "tls-test-operator-token"
ROUTING_KEY = "TLSTESTROUTINGKEY000000000000001"


def _read(redis: redis_sync.Redis, stream: str) -> list[bytes]:
    return [fields.get(b"__data__", b"") for _, fields in redis.xrange(stream)]


def _wait(check: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    wait_until(check, timeout, what)


def test_pagerdutys_own_client_over_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "tls")
    env = {
        "JARVIS_HTTP_TLS_CERTFILE": str(cert),
        "JARVIS_HTTP_TLS_KEYFILE": str(key),
        "JARVIS_API_TOKEN": TOKEN,
        "JARVIS_DETECTOR__PROBES_ENABLED": "false",
        "JARVIS_DETECTOR__PAGERDUTY_ROUTING_KEYS": f'["{ROUTING_KEY}"]',
        "JARVIS_CONSUMER__BLOCK_MS": "100",
    }
    with LocalCluster(tmp_path / "cluster", extra_env=env) as cluster:
        detector = cluster.add("detector")
        cluster.add("triage")
        assert detector.url.startswith("https://")
        bus = redis_sync.Redis.from_url(cluster.redis_url)
        trusted = ssl.create_default_context(cafile=str(cert))
        client = pagerduty.EventsApiV2Client(
            ROUTING_KEY, base_url=f"{detector.url}/webhooks/pagerduty", verify=trusted
        )
        dedup_key = client.trigger("Backend API unresponsive", "jarvis-host", dedup_key="tls-1")
        assert dedup_key == "tls-1"
        _wait(lambda: bus.xlen("jarvis:severity") >= 1, "triage opened the incident")
        assert client.acknowledge("tls-1") == "tls-1"
        _wait(
            lambda: any(b"IncidentAcknowledged" in d for d in _read(bus, "jarvis:incidents")),
            "the acknowledgement reached the incident",
        )
        client.resolve("tls-1")
        _wait(lambda: bus.xlen("jarvis:alerts") >= 2, "the resolve is on the stream")
        alerts = _read(bus, "jarvis:alerts")
        assert b'"status":"firing"' in alerts[0]
        assert b'"status":"resolved"' in alerts[1]

        # Plain HTTP to the same port is no conversation, and a client that does not trust
        # the certificate refuses it.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{detector.port}/health", timeout=3)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{detector.url}/health", timeout=3)
        # The container's healthcheck speaks TLS and sends the token.
        check = subprocess.run(
            [sys.executable, "-m", "services.healthcheck"],
            env={**detector.env},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert check.returncode == 0, check.stderr
