"""HTTP probes against real HTTP stand-ins on 127.0.0.1: backend, Ollama, any target,
and the Prometheus / Grafana alert pollers."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.detector.external import from_grafana_api, from_prometheus_api, label_fingerprint
from services.detector.probes import Schedule
from services.detector.probes_http import (
    AlertPoller,
    BackendHealthProbe,
    HttpTargetProbe,
    OllamaCanaryProbe,
    OllamaTagsProbe,
)
from shared.clock import ManualClock
from shared.events import Level
from tests.integration.detector_stubs import StubHTTP, free_port, stub_http

pytestmark = pytest.mark.integration

FAST = Schedule(interval_s=1, timeout_s=0.5)
LABELS = ["service", "job", "container", "instance"]


@pytest.fixture
async def stub() -> AsyncIterator[StubHTTP]:
    async with stub_http() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


async def test_backend_health_states(stub: StubHTTP, client: httpx.AsyncClient) -> None:
    probe = BackendHealthProbe(client, stub.url, FAST)

    async def check() -> tuple[bool, str, Level]:
        [result] = (await probe.run()).results
        assert (result.service, result.check) == ("backend", "health")
        return result.ok, result.detail, result.impact

    stub.set("GET", "/health", 200, {"status": "healthy"})
    assert (await check())[:2] == (True, "healthy")
    stub.set("GET", "/health", 200, {"status": "degraded", "database": "down"})
    assert await check() == (False, "backend reports degraded", Level.MEDIUM)
    stub.set("GET", "/health", 200, {"status": "unhealthy"})
    assert await check() == (False, "backend status 'unhealthy'", Level.HIGH)
    stub.set("GET", "/health", 503, {"status": "healthy"})
    assert await check() == (False, "HTTP 503", Level.HIGH)
    stub.set("GET", "/health", 200, "<html>oops</html>")
    assert (await check())[:2] == (False, "health answer is not JSON")
    stub.set("GET", "/health", 200, {"status": "healthy"}, delay_s=1.5)
    ok, detail, _ = await check()
    assert not ok
    assert detail == "backend timeout after 0.5s"


async def test_backend_unreachable(client: httpx.AsyncClient) -> None:
    probe = BackendHealthProbe(client, f"http://127.0.0.1:{free_port()}", FAST)
    [result] = (await probe.run()).results
    assert not result.ok
    assert result.detail.startswith("backend unreachable: ConnectError")


async def test_ollama_models_and_no_models(stub: StubHTTP, client: httpx.AsyncClient) -> None:
    probe = OllamaTagsProbe(client, stub.url, FAST)
    stub.set("GET", "/api/tags", 200, {"models": [{"name": "tinyllama:latest"}]})
    api, models = (await probe.run()).results
    assert (api.check, api.ok) == ("api", True)
    assert (models.check, models.ok, models.value) == ("models", True, 1)
    stub.set("GET", "/api/tags", 200, {"models": []})
    api, models = (await probe.run()).results
    assert api.ok
    assert (models.ok, models.detail) == (False, "No models available")
    stub.set("GET", "/api/tags", 500, "boom")
    [api] = (await probe.run()).results
    assert (api.check, api.ok, api.detail) == ("api", False, "HTTP 500")


async def test_ollama_unreachable(client: httpx.AsyncClient) -> None:
    probe = OllamaTagsProbe(client, f"http://127.0.0.1:{free_port()}", FAST)
    [api] = (await probe.run()).results
    assert (api.service, api.check, api.ok) == ("ollama", "api", False)
    assert "unreachable" in api.detail


async def test_ollama_inference_canary(stub: StubHTTP, client: httpx.AsyncClient) -> None:
    schedule = Schedule(interval_s=60, timeout_s=1.0)
    probe = OllamaCanaryProbe(client, stub.url, "tinyllama", "test", 0.3, schedule)
    stub.set("POST", "/api/generate", 200, {"response": "hi", "done": True})
    [result] = (await probe.run()).results
    assert (result.check, result.ok) == ("inference", True)
    assert result.value is not None
    assert result.value < 0.3
    method, path, body = stub.requests[-1]
    assert (method, path) == ("POST", "/api/generate")
    assert b'"model":"tinyllama"' in body.replace(b" ", b"")
    assert b'"stream":false' in body.replace(b" ", b"")
    stub.set("POST", "/api/generate", 200, {"response": "hi"}, delay_s=0.5)
    [result] = (await probe.run()).results
    assert not result.ok
    assert result.detail.startswith("slow inference")
    assert result.impact is Level.MEDIUM
    stub.set("POST", "/api/generate", 404, {"error": "model 'tinyllama' not found"})
    [result] = (await probe.run()).results
    assert not result.ok
    assert "model 'tinyllama' not found" in result.detail
    stub.set("POST", "/api/generate", 200, {"response": "hi"}, delay_s=2)
    [result] = (await probe.run()).results
    assert (result.ok, result.detail) == (False, "no answer within 1s")


async def test_http_target_expected_status(stub: StubHTTP) -> None:
    stub.set("GET", "/ping", 204)
    any_2xx = HttpTargetProbe("site", stub.url + "/ping?x=1", "web", [], FAST)
    [result] = (await any_2xx.run()).results
    assert (result.service, result.ok, result.labels) == ("web", True, {"target": "site"})
    assert stub.requests[-1][:2] == ("GET", "/ping")
    assert stub.headers[-1]["host"] == stub.url.removeprefix("http://")
    only_200 = HttpTargetProbe("site", stub.url + "/ping", "web", [200], FAST)
    [result] = (await only_200.run()).results
    assert (result.ok, result.detail) == (False, "HTTP 204")
    stub.set("GET", "/ping", 500)
    [result] = (await any_2xx.run()).results
    assert (result.ok, result.detail) == (False, "HTTP 500")
    stub.set("GET", "/ping", 200, delay_s=1.5)
    [result] = (await any_2xx.run()).results
    assert (result.ok, result.detail) == (False, "timeout after 0.5s")


async def test_http_target_unreachable_and_not_http() -> None:
    down = HttpTargetProbe("site", f"http://127.0.0.1:{free_port()}/", "web", [], FAST)
    [result] = (await down.run()).results
    assert not result.ok
    assert result.detail.startswith("unreachable: ConnectionRefusedError")

    async def babble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(babble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        odd = HttpTargetProbe("ssh", f"http://127.0.0.1:{port}/", "ssh", [], FAST)
        [result] = (await odd.run()).results
    finally:
        server.close()
    assert not result.ok
    assert result.detail == "not an HTTP answer: 'SSH-2.0-OpenSSH_9.2'"
    with pytest.raises(ValueError, match="not an http"):
        HttpTargetProbe("x", "ftp://127.0.0.1/", "x", [], FAST)


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made by the openssl command line tool."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return cert, key


async def test_http_target_over_tls(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    tls_stub = StubHTTP()
    await tls_stub.start(tls=server_tls)
    tls_stub.set("GET", "/health", 200, {"status": "healthy"})
    url = tls_stub.url.replace("http://", "https://") + "/health"
    try:
        trusting = ssl.create_default_context(cafile=str(cert))
        [ok] = (await HttpTargetProbe("tls", url, "web", [], FAST, trusting).run()).results
        [untrusted] = (await HttpTargetProbe("tls", url, "web", [], FAST).run()).results
    finally:
        await tls_stub.close()
    assert (ok.ok, ok.detail) == (True, "HTTP 200")
    assert not untrusted.ok
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.detail


async def test_prometheus_poller(stub: StubHTTP, client: httpx.AsyncClient) -> None:
    clock = ManualClock()
    labels = {"alertname": "BackendDown", "job": "backend", "severity": "critical"}
    stub.set(
        "GET",
        "/api/v1/alerts",
        200,
        {
            "status": "success",
            "data": {
                "alerts": [
                    {"labels": labels, "annotations": {}, "state": "firing", "value": "1"},
                    {"labels": {"alertname": "P"}, "annotations": {}, "state": "pending"},
                ]
            },
        },
    )

    def mapper(body: object, service_labels: object, now: object) -> dict[str, object]:
        return from_prometheus_api(body, LABELS, clock.now(), sender="prometheus")  # type: ignore[return-value]

    poller = AlertPoller(
        client, "prometheus", stub.url + "/api/v1/alerts", mapper, LABELS, clock, FAST
    )
    outcome = await poller.run()
    assert outcome.results[0].ok
    assert outcome.firing is not None
    assert list(outcome.firing) == ["am:" + label_fingerprint(labels)]
    stub.set("GET", "/api/v1/alerts", 503, "down")
    outcome = await poller.run()
    assert outcome.firing is None  # unknown, not "nothing firing"
    assert (outcome.results[0].check, outcome.results[0].ok) == ("alerts-api", False)
    stub.set("GET", "/api/v1/alerts", 200, {"status": "error", "error": "bad"})
    outcome = await poller.run()
    assert outcome.firing is None
    assert "unexpected answer" in outcome.results[0].detail


async def test_grafana_poller_sends_the_token(stub: StubHTTP, client: httpx.AsyncClient) -> None:
    stub.set("GET", "/api/alerts", 200, [{"id": 3, "name": "Disk", "state": "alerting"}])
    poller = AlertPoller(
        client,
        "grafana",
        stub.url + "/api/alerts",
        from_grafana_api,
        LABELS,
        ManualClock(),
        FAST,
        token="glsa_secret",
    )
    outcome = await poller.run()
    assert outcome.firing is not None
    assert list(outcome.firing) == ["grafana:rule:3"]
    assert stub.requests[-1][:2] == ("GET", "/api/alerts")
    assert stub.headers[-1]["authorization"] == "Bearer glsa_secret"
