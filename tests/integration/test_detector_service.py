"""The detector as a service: probes on their schedules publish damped alerts onto
jarvis:alerts, polled alerts fire and resolve, heartbeats, `/health` and `/metrics`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from services.detector.main import build as build_detector
from shared.settings import Settings
from tests.helpers import eventually, read_stream, running
from tests.integration.detector_stubs import stub_http

pytestmark = pytest.mark.integration

ALL_PROBES = (
    "backend",
    "ollama",
    "postgres",
    "redis",
    "docker",
    "logs",
    "host",
    "prometheus",
    "grafana",
)


def only(**sections: dict[str, Any]) -> dict[str, Any]:
    """Detector settings with every built-in probe off except the ones given, fast timings."""
    detector: dict[str, Any] = {
        "probes_enabled": True,
        "probe_interval_s": 0.2,
        "probe_timeout_s": 0.5,
        "retry_interval_s": 0.05,
    }
    for name in ALL_PROBES:
        detector[name] = {"enabled": False}
    for name, values in sections.items():
        detector[name] = {"enabled": True, **values} if name in ALL_PROBES else values
    return detector


async def _alerts(redis: Redis, **match: str) -> list[dict[str, Any]]:
    entries = await read_stream(redis, "jarvis:alerts")
    return [e for e in entries if all(e.get(k) == v for k, v in match.items())]


async def test_backend_failure_fires_once_and_recovery_resolves(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with stub_http() as stub:
        stub.set("GET", "/health", 200, {"status": "healthy"})
        settings = make_settings(
            backend_url=stub.url, detector=only(backend={"fire_after": 2, "resolve_after": 2})
        )
        async with running(settings, [build_detector]) as (client, _):

            async def probed_healthy() -> bool:
                body = (await client.get("/health")).json()
                checks = body["services"]["detector"]["probes"]["backend-health"]["checks"]
                return checks.get("backend/health", {}).get("ok") is True

            await eventually(probed_healthy)
            stub.set("GET", "/health", 503, {"status": "down"})
            firing = await eventually(lambda: _alerts(redis, status="firing"))
            # Several more failing intervals: the unchanged state is not re-published.
            for _ in range(6):
                await eventually(lambda: _async(True), timeout=0.2)
            health = (await client.get("/health")).json()
            assert health["status"] == "ok"  # the detector itself is fine
            detector = health["services"]["detector"]
            assert detector["firing"] == ["backend-health:backend/health"]
            check = detector["probes"]["backend-health"]["checks"]["backend/health"]
            assert (check["ok"], check["detail"], check["firing"]) == (False, "HTTP 503", True)
            metrics = (await client.get("/metrics")).text
            labels = 'check="health",probe="backend-health",service="backend"'
            assert f"jarvis_detector_check_up{{{labels}}} 0.0" in metrics
            assert f"jarvis_detector_check_firing{{{labels}}} 1.0" in metrics
            stub.set("GET", "/health", 200, {"status": "healthy"})
            resolved = await eventually(lambda: _alerts(redis, status="resolved"))
    assert len(await _alerts(redis, status="firing")) == 1
    assert len(firing) == 1
    assert len(resolved) == 1
    alert = firing[0]
    assert (alert["source"], alert["service"], alert["check"]) == ("probe", "backend", "health")
    assert (alert["impact"], alert["urgency"]) == ("high", "low")
    assert alert["summary"] == "backend health: HTTP 503"
    assert resolved[0]["fingerprint"] == alert["fingerprint"]
    assert resolved[0]["ends_at"] is not None


async def test_a_single_failed_probe_is_damped(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    async with stub_http() as stub:
        stub.set("GET", "/health", 200, {"status": "healthy"})
        settings = make_settings(
            backend_url=stub.url,
            detector=only(backend={"fire_after": 3}) | {"retry_interval_s": 0.3},
        )
        async with running(settings, [build_detector]):
            await eventually(lambda: _async(len(stub.requests) >= 1))
            stub.set("GET", "/health", 500)
            seen = len(stub.requests)
            await eventually(lambda: _async(len(stub.requests) >= seen + 1))
            stub.set("GET", "/health", 200, {"status": "healthy"})
            await eventually(lambda: _async(len(stub.requests) >= seen + 4))
    assert await _alerts(redis) == []


async def test_polled_prometheus_alerts_fire_and_resolve(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    alert = {
        "labels": {"alertname": "OllamaDown", "job": "ollama", "severity": "critical"},
        "annotations": {"summary": "Ollama is down"},
        "state": "firing",
        "activeAt": "2026-03-01T11:00:00Z",
        "value": "1e+00",
    }
    answer = {"status": "success", "data": {"alerts": [alert]}}
    async with stub_http() as stub:
        stub.set("GET", "/api/v1/alerts", 200, answer)
        settings = make_settings(prometheus_url=stub.url, detector=only(prometheus={}))
        async with running(settings, [build_detector]):
            [firing] = await eventually(lambda: _alerts(redis, check="OllamaDown"))
            # Prometheus unreachable for a while: its alerts are not resolved for that.
            stub.set("GET", "/api/v1/alerts", 503, "restarting")
            seen = len(stub.requests)
            await eventually(lambda: _async(len(stub.requests) >= seen + 3))
            assert len(await _alerts(redis, check="OllamaDown")) == 1
            stub.set("GET", "/api/v1/alerts", 200, {"status": "success", "data": {"alerts": []}})
            resolved = await eventually(
                lambda: _alerts(redis, check="OllamaDown", status="resolved")
            )
            await eventually(lambda: _alerts(redis, check="alerts-api", status="resolved"))
    assert (firing["service"], firing["external_severity"]) == ("ollama", "critical")
    assert firing["status"] == "firing"
    assert resolved[0]["fingerprint"] == firing["fingerprint"]
    api_down = await _alerts(redis, service="prometheus", check="alerts-api")
    assert [a["status"] for a in api_down] == ["firing", "resolved"]


async def test_heartbeat_silence_fires_and_the_next_call_resolves(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        detector=only(heartbeats=[{"name": "nightly-backup", "period_s": 0.6, "service": "backup"}])
    )
    async with running(settings, [build_detector]) as (client, _):
        answer = await client.post("/api/v1/heartbeats/nightly-backup")
        assert answer.status_code == 200
        assert answer.json()["name"] == "nightly-backup"
        unknown = await client.post("/api/v1/heartbeats/someone-else")
        assert unknown.status_code == 404
        assert unknown.json()["detail"][0]["loc"] == ["path", "name"]
        [firing] = await eventually(lambda: _alerts(redis, check="heartbeat"), timeout=5)
        assert (await client.post("/api/v1/heartbeats/nightly-backup")).status_code == 200
        await eventually(lambda: _alerts(redis, check="heartbeat", status="resolved"))
    assert firing["service"] == "backup"
    assert firing["status"] == "firing"
    assert "nightly-backup" in firing["summary"]


async def test_prometheus_and_probes_are_independent_tasks(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """A probe that hangs does not delay the others (each has its own task and time limit)."""
    async with stub_http() as stub:
        stub.set("GET", "/health", 200, {"status": "healthy"}, delay_s=30)
        stub.set("GET", "/api/tags", 200, {"models": []})
        settings = make_settings(
            backend_url=stub.url,
            ollama_url=stub.url,
            detector=only(backend={"fire_after": 1}, ollama={"fire_after": 1}),
        )
        async with running(settings, [build_detector]):
            models = await eventually(lambda: _alerts(redis, check="models"), timeout=3)
            backend = await eventually(lambda: _alerts(redis, check="health"), timeout=5)
    assert models[0]["summary"] == "ollama models: No models available"
    assert "timeout after 0.5s" in backend[0]["summary"]


async def _async(value: Any) -> Any:
    return value
