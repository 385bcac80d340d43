"""Detection to remediation, end to end, against a real Docker engine.

A stand-in backend (busybox httpd serving `/health` on 127.0.0.1, host networking) is
killed. The detector's probe sees it, triage opens an incident and runs the backend
playbook, the remediator — switched on for this run, allowlisted to the stand-in and the
Redis — takes a BGSAVE, restarts the container and verifies backend health, and the
incident resolves itself once the probe is healthy again and the quiet period has passed.
The runbook gives a human 15 minutes just to respond to a P0; the target here is 30 s.

    python -m bench.detect_to_remediate        (needs a Docker engine: scripts/ci-docker.sh)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from shared.cluster import jarvis_ir_command, wait_until
from shared.embedded_redis import free_port

__all__ = ["main"]

IMAGE = os.environ.get("JARVIS_TEST_IMAGE", "jarvis-test/busybox")

PLAYBOOKS = """
fallback: diagnostics_only
playbooks:
  - name: backend_api_unresponsive
    title: Backend API unresponsive (runbook Scenario 1, without a PostgreSQL to back up)
    services: [backend]
    steps:
      - {phase: diagnostics, action: docker.stats, target: backend}
      - {phase: protect, action: redis.bgsave, target: redis}
      - {phase: fix, action: docker.restart, target: backend}
      - {phase: verify, action: verify.all, target: "", params: {checks: [backend_health]}}
  - name: diagnostics_only
    title: Evidence for a human
    steps:
      - {phase: diagnostics, action: docker.stats, target: ""}
"""


def _docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()


def _config(workdir: Path, backend_port: int, redis_port: int, container: str) -> Path:
    (workdir / "playbooks.yaml").write_text(PLAYBOOKS)
    off = {"enabled": False}
    config = {
        "backend_url": f"http://127.0.0.1:{backend_port}",
        "data_dir": str(workdir / "var"),
        "embedded_redis_port": redis_port,
        "log_level": "WARNING",
        "detector": {
            "probe_interval_s": 2.0,
            "probe_timeout_s": 1.0,
            "retry_interval_s": 0.5,
            **dict.fromkeys(("ollama", "postgres", "redis", "docker", "logs", "host"), off),
            "prometheus": off,
            "grafana": off,
        },
        "triage": {
            "playbooks_file": str(workdir / "playbooks.yaml"),
            "containers": {"backend": container, "redis": "sutazai-redis"},
            "quiet_period_s": 2.0,
        },
        "remediator": {
            "enabled": True,
            "enabled_actions": ["*"],
            "allowed_targets": [container, "sutazai-redis"],
            "backend_container": container,
            "redis_targets": {"sutazai-redis": {"url": f"redis://127.0.0.1:{redis_port}/0"}},
        },
    }
    path = workdir / "jarvis.json"
    path.write_text(json.dumps(config))
    return path


def run() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="jarvis-d2r-"))
    backend_port, redis_port, http_port = free_port(), free_port(), free_port()
    container = f"jarvis-bench-backend-{uuid.uuid4().hex[:6]}"
    health = '{"status":"healthy"}'
    _docker(
        "run",
        "-d",
        "--name",
        container,
        "--network",
        "host",
        IMAGE,
        "sh",
        "-c",
        f"mkdir -p /www && echo '{health}' > /www/health && "
        f"exec httpd -f -p 127.0.0.1:{backend_port} -h /www",
    )
    base = f"http://127.0.0.1:{http_port}"
    log = (workdir / "up.log").open("wb")
    proc = subprocess.Popen(
        [
            *jarvis_ir_command(),
            "up",
            "--config",
            str(_config(workdir, backend_port, redis_port, container)),
        ],
        env={**os.environ, "JARVIS_HTTP_PORT": str(http_port)},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    client = httpx.Client(base_url=base, timeout=5)
    try:
        wait_until(lambda: _get(client, "/health") is not None, 60, "jarvis-ir up answering")
        wait_until(lambda: _get(f"http://127.0.0.1:{backend_port}", "/health"), 10, "backend")
        time.sleep(3)  # a few healthy probe rounds first

        killed = time.monotonic()
        _docker("kill", container)
        incident = wait_until(
            lambda: _first(_get(client, "/api/v1/incidents?service=backend")), 60, "an incident"
        )
        detected = time.monotonic() - killed
        path = f"/api/v1/incidents/{incident['id']}/timeline"

        def step_done(action: str) -> dict[str, Any] | None:
            for entry in _get(client, path) or []:
                event = entry["event"]
                if entry["event_type"] == "ActionCompleted" and event["action"] == action:
                    return dict(event)
            return None

        restarted = wait_until(lambda: step_done("docker.restart"), 60, "the restart")
        restarted_at = time.monotonic() - killed
        verified = wait_until(lambda: step_done("verify.all"), 60, "the verification")
        verified_at = time.monotonic() - killed
        wait_until(
            lambda: (
                (_get(client, f"/api/v1/incidents/{incident['id']}") or {}).get("status")
                == "resolved"
            ),
            60,
            "the incident resolving itself",
        )
        resolved_at = time.monotonic() - killed
        running = _docker("inspect", "-f", "{{.State.Running}}", container)
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)

    print(f"stand-in backend {container} killed at t=0 (probe every 2 s, fire after 2 failures)")
    print(f"  incident opened (detected)     {detected:6.1f} s")
    print(f"  restart: {restarted['outcome']:<21} {restarted_at:6.1f} s")
    print(f"  verification: {verified['outcome']:<16} {verified_at:6.1f} s")
    print(f"  incident resolved by itself    {resolved_at:6.1f} s  (target <= 30 s)")
    print(f"  container running again: {running}")
    print(
        "  baseline: the runbook's response time for a P0 is 15 min = 900 s "
        f"({resolved_at / 900:.3f} of it)"
    )
    ok = restarted["outcome"] == "succeeded" and verified["outcome"] == "succeeded"
    return 0 if ok and running == "true" else 1


def _get(client: httpx.Client | str, path: str) -> Any:
    try:
        resp = httpx.get(client + path, timeout=2) if isinstance(client, str) else client.get(path)
    except httpx.HTTPError:
        return None
    return resp.json() if resp.status_code == 200 else None


def _first(items: Any) -> Any:
    return items[0] if items else None


def main(argv: list[str] | None = None) -> int:
    del argv
    return run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
