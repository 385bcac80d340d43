"""The detector as an operator runs it: `jarvis-ir serve detector --config …` in its own
process, probing a stand-in backend over TCP and taking webhooks on its real port."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.helpers import eventually, read_stream
from tests.integration.detector_stubs import free_port, stub_http

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OTHER_PROBES = ("ollama", "postgres", "redis", "docker", "logs", "host", "prometheus", "grafana")


def _config(tmp_path: Path, backend_url: str) -> Path:
    lines = [
        f"backend_url: {backend_url}",
        "detector:",
        "  probe_interval_s: 0.3",
        "  probe_timeout_s: 5",
        "  fire_after: 1",
        "  resolve_after: 1",
    ]
    lines += [f"  {name}: {{enabled: false}}" for name in OTHER_PROBES]
    config = tmp_path / "jarvis.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


async def test_serve_detector_probes_and_ingests(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    port = free_port()
    async with stub_http() as backend:
        backend.set("GET", "/health", 503, {"status": "down"})
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            # The environment overrides the file: a 0.4 s timeout instead of 5 s.
            "JARVIS_DETECTOR__PROBE_TIMEOUT_S": "0.4",
            "JARVIS_CONFIG": "",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "serve",
            "detector",
            "--config",
            str(_config(tmp_path, backend.url)),
            "--port",
            str(port),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:

                async def up() -> bool:
                    assert proc.returncode is None, "the detector exited"
                    try:
                        return (await client.get("/health")).status_code == 200
                    except httpx.HTTPError:
                        return False

                async def backend_check() -> dict[str, object]:
                    health = (await client.get("/health")).json()
                    probes = health["services"]["detector"]["probes"]
                    return probes["backend-health"]["checks"]["backend/health"]

                await eventually(up, timeout=30)
                [firing] = await eventually(lambda: read_stream(redis, "jarvis:alerts"))
                assert (firing["service"], firing["check"]) == ("backend", "health")
                assert firing["summary"] == "backend health: HTTP 503"
                # Now it hangs past the timeout set in the environment (0.4 s, not the file's 5 s).
                backend.set("GET", "/health", 200, {"status": "healthy"}, delay_s=1)

                async def timed_out() -> bool:
                    return (await backend_check())["detail"] == "backend timeout after 0.4s"

                await eventually(timed_out)
                # Still failing, differently: the state is unchanged, so nothing is re-published.
                assert len(await read_stream(redis, "jarvis:alerts")) == 1
                backend.set("GET", "/health", 200, {"status": "healthy"})
                await eventually(lambda: _with_status(redis, "resolved"))
                assert (await backend_check())["ok"] is True
                answer = await client.post(
                    "/webhooks/pagerduty/v2/enqueue",
                    json={
                        "routing_key": "k" * 32,
                        "event_action": "trigger",
                        "payload": {
                            "summary": "Ollama OOM",
                            "source": "gpu-host",
                            "severity": "error",
                            "component": "ollama",
                        },
                    },
                )
                assert answer.status_code == 202
                assert answer.json()["status"] == "success"
                [pd] = await _with_source(redis, "pagerduty")
                assert (pd["service"], pd["external_severity"]) == ("ollama", "error")
                metrics = (await client.get("/metrics")).text
                assert 'jarvis_detector_check_up{check="health",probe="backend-health"' in metrics
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    # uvicorn shuts down gracefully, then re-raises SIGTERM; a kill would be -9.
    assert proc.returncode in (0, -signal.SIGTERM)


async def _with_status(redis: Redis, status: str) -> list[dict[str, object]]:
    return [a for a in await read_stream(redis, "jarvis:alerts") if a["status"] == status]


async def _with_source(redis: Redis, source: str) -> list[dict[str, object]]:
    return [a for a in await read_stream(redis, "jarvis:alerts") if a["source"] == source]


def test_invalid_configuration_stops_the_program_naming_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("detector:\n  docker:\n    cpu_pct: -5\n")
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "serve", "detector", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"},
    )
    assert done.returncode == 2
    assert "detector.docker.cpu_pct" in done.stderr
