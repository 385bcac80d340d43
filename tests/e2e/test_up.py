"""`jarvis-ir up` as a user runs it: a subprocess on free ports, embedded Redis and SQLite."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_sync

from shared.embedded_redis import free_port

pytestmark = pytest.mark.e2e


class System:
    def __init__(self, base_url: str, redis_url: str, log: Path) -> None:
        self.base_url = base_url
        self.redis = redis_sync.Redis.from_url(redis_url)
        self.http = httpx.Client(base_url=base_url, timeout=5)
        self.log = log

    def wait_for(self, path: str, predicate: Any, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        body: Any = None
        while time.monotonic() < deadline:
            resp = self.http.get(path)
            body = resp.json() if resp.status_code == 200 else None
            if body is not None and predicate(body):
                return body
            time.sleep(0.1)
        pytest.fail(
            f"GET {path} never satisfied the check; last: {body!r}\n{self.log.read_text()[-3000:]}"
        )


def _jarvis_ir() -> str:
    found = shutil.which("jarvis-ir", path=str(Path(sys.executable).parent)) or shutil.which(
        "jarvis-ir"
    )
    assert found, "the jarvis-ir command is not installed (pip install -e .)"
    return found


def start_up(
    folder: Path, settings: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str, int, Path]:
    """`jarvis-ir up` run in `folder` on free ports (embedded Redis, SQLite under ./var) with
    the settings given as environment variables, once it answers /health: the process,
    its URL, the embedded Redis's port, and its log."""
    http_port, redis_port = free_port(), free_port()
    env = {
        **os.environ,
        "JARVIS_HTTP_PORT": str(http_port),
        "JARVIS_EMBEDDED_REDIS_PORT": str(redis_port),
        **settings,
    }
    for var in ("REDIS_URL", "DATABASE_URL", "JARVIS_CONFIG"):
        env.pop(var, None)
    log = folder / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_jarvis_ir(), "up"], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code in (200, 503):
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"jarvis-ir up did not start:\n{log.read_text()}")
    return proc, base, redis_port, log


def embedded_redis_url(workdir: Path, port: int) -> str:
    """The URL of the Redis `jarvis-ir up` embedded (in `workdir`): it wants the password
    `up` made under the data directory."""
    password = (workdir / "var" / "secrets" / "redis.password").read_text().strip()
    return f"redis://:{password}@127.0.0.1:{port}/0"


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    proc, base, redis_port, log = start_up(tmp_path, {"JARVIS_DETECTOR__PROBE_INTERVAL_S": "0.5"})
    yield System(base, embedded_redis_url(tmp_path, redis_port), log)
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    # The embedded Redis went down with it.
    with pytest.raises(redis_sync.ConnectionError):
        redis_sync.Redis(port=redis_port, socket_connect_timeout=1).ping()
    assert (tmp_path / "var" / "recorder.sqlite3").exists()
    assert (tmp_path / "var" / "redis" / "appendonlydir").exists()


def _incident_for(system: System, service: str) -> dict[str, Any]:
    incidents = system.wait_for(f"/api/v1/incidents?service={service}", lambda body: len(body) == 1)
    return dict(incidents[0])


def test_posted_alert_becomes_an_incident_with_a_timeline(system: System) -> None:
    resp = system.http.post(
        "/api/v1/alerts",
        json={
            "service": "ollama",
            "check": "models",
            "summary": "No models available",
            "impact": "high",
            "urgency": "low",
        },
    )
    assert resp.status_code == 202
    incident = _incident_for(system, "ollama")
    assert incident["severity"] == "P1"
    timeline = system.wait_for(
        f"/api/v1/incidents/{incident['id']}/timeline", lambda body: len(body) >= 2
    )
    assert [e["event_type"] for e in timeline[:2]] == ["AlertRaised", "SeverityAssigned"]
    assert timeline[0]["event_id"] == resp.json()["event_ids"][0]
    assert timeline[1]["event"]["severity"] == "P1"
    health = system.http.get("/health").json()
    assert set(health["services"]) == {"detector", "triage", "remediator", "escalator", "recorder"}
    metrics = system.http.get("/metrics").text
    assert 'jarvis_alerts_ingested_total{source="api"} 1.0' in metrics


def test_raw_xadd_from_another_system_arrives(system: System) -> None:
    alert = {
        "service": "sutazai-postgres",
        "check": "connect",
        "impact": "medium",
        "urgency": "low",
    }
    system.redis.xadd("jarvis:alerts", {"__data__": json.dumps(alert)})
    # Triage names services canonically: the container name sutazai-postgres is "postgres".
    incident = _incident_for(system, "postgres")
    assert incident["severity"] == "P2"


def test_invalid_input_is_refused_over_http_and_dead_lettered_over_xadd(system: System) -> None:
    resp = system.http.post("/api/v1/alerts", json={"check": "health", "urgency": "soon"})
    assert resp.status_code == 422
    fields = {tuple(err["loc"]) for err in resp.json()["detail"]}
    assert fields == {("body", "service"), ("body", "urgency")}

    entry_id = system.redis.xadd("jarvis:alerts", {"__data__": json.dumps({"check": "x"})})
    deadline = time.monotonic() + 15
    dead: list[Any] = []
    while time.monotonic() < deadline and not dead:
        dead = system.redis.xrange("jarvis:dead-letter")
        time.sleep(0.1)
    assert len(dead) == 1
    fields_dl = {k.decode(): v.decode() for k, v in dead[0][1].items()}
    assert fields_dl["entry_id"] == entry_id.decode()
    assert "service" in fields_dl["reason"]


def test_backend_probe_raises_an_alert_when_the_backend_is_unreachable(system: System) -> None:
    # Nothing listens on the default backend port here: the probe must say so. (Other
    # probes fail too; triage may group the backend under a failing dependency.)
    incidents = system.wait_for(
        "/api/v1/incidents", lambda body: any("backend" in i["services"] for i in body)
    )
    incident = next(i for i in incidents if "backend" in i["services"])
    timeline = system.wait_for(
        f"/api/v1/incidents/{incident['id']}/timeline",
        lambda body: any(
            e["event_type"] == "AlertRaised" and e["event"]["service"] == "backend" for e in body
        ),
    )
    alert = next(
        e["event"]
        for e in timeline
        if e["event_type"] == "AlertRaised" and e["event"]["service"] == "backend"
    )
    assert alert["source"] == "probe"
    assert alert["check"] == "health"
    assert alert["summary"].startswith("backend health:")


def test_a_second_up_on_a_taken_redis_port_refuses_to_start(tmp_path: Path) -> None:
    from shared.embedded_redis import EmbeddedRedis

    other = EmbeddedRedis(tmp_path / "other")  # e.g. the first `jarvis-ir up` on this machine
    other_url = other.start()
    try:
        env = {
            **os.environ,
            "JARVIS_HTTP_PORT": str(free_port()),
            "JARVIS_EMBEDDED_REDIS_PORT": str(other.port),
        }
        for var in ("REDIS_URL", "DATABASE_URL", "JARVIS_CONFIG"):
            env.pop(var, None)
        done = subprocess.run(
            [_jarvis_ir(), "up"], cwd=tmp_path, env=env, capture_output=True, timeout=60
        )
        assert done.returncode == 2, done.stderr.decode()[-2000:]
        assert f"port {other.port} on 127.0.0.1 is already in use" in done.stderr.decode()
        assert "Traceback" not in done.stderr.decode()
        # The other system's Redis was never used: no stream, no consumer group of ours.
        assert redis_sync.Redis.from_url(other_url).dbsize() == 0
    finally:
        other.stop()
