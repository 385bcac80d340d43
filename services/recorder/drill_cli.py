"""`jarvis-ir drill <scenario>`: inject one of the runbook's failures into the configured
stack on purpose and measure how fast the responder closes the loop.

It needs `drills.enabled = true` and the scenario's container in `drills.allowed_targets`,
asks for confirmation unless `--yes`, announces the drill to the running responder
(`POST /api/v1/drills`, with JARVIS_API_TOKEN), injects the fault (docker kill or stop,
the model removed through Ollama's API, memory held in the sandbox's Ollama stand-in),
then follows `GET /api/v1/drills/{id}` until the incident is resolved and prints the
report: time to detect, to each phase, to verified, to resolved.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import docker
import httpx
from docker.errors import DockerException

from services.recorder.drills import SCENARIOS
from shared.settings import ConfigError, Settings, load_settings

__all__ = ["inject", "run"]


def inject(scenario: str, target: str, settings: Settings) -> str:
    """Break the stack as the scenario says; returns what was done."""
    drills = settings.drills
    ollama = settings.ollama_url.rstrip("/")
    if scenario in ("backend-down", "ollama-down", "postgres-down"):
        client = docker.DockerClient(base_url=settings.remediator.docker_url or None, timeout=60)
        try:
            if scenario == "postgres-down":
                client.api.stop(target, timeout=10)
                return f"docker stop {target}"
            client.api.kill(target)
            return f"docker kill {target}"
        finally:
            client.close()
    if scenario == "ollama-no-models":
        response = httpx.request(
            "DELETE", f"{ollama}/api/delete", json={"model": drills.model}, timeout=30
        )
        response.raise_for_status()
        return f"DELETE {ollama}/api/delete {drills.model}"
    response = httpx.post(
        f"{ollama}/sandbox/memory", json={"percent": drills.memory_percent}, timeout=60
    )
    if response.status_code == 404:
        raise RuntimeError("memory-pressure needs the sandbox's Ollama stand-in (deploy/sandbox)")
    response.raise_for_status()
    return f"{target} holds {drills.memory_percent:g} % of its memory limit"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def render(report: dict[str, Any]) -> str:
    lines = [
        f"drill {report['id']}: {report['scenario']} ({report['fault']})",
        f"  incident {report['incident_id'] or '—'} playbook {report['playbook'] or '—'}",
        f"  detected  {_fmt(report['detected_s'])}",
    ]
    for phase in report["phases"]:
        lines.append(f"  {phase['phase']:<10}{_fmt(phase['finished_s'])}")
    lines += [
        f"  verified  {_fmt(report['verified_s'])}",
        f"  resolved  {_fmt(report['resolved_s'])} (by {report['resolved_by'] or '—'})",
        f"  status    {report['status']}",
    ]
    return "\n".join(lines)


def run(
    scenario: str,
    *,
    config: str | None,
    url: str | None,
    yes: bool,
    by: str,
    as_json: bool,
    timeout_s: float | None = None,
) -> int:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        print(f"jarvis-ir: {exc}", file=sys.stderr)
        return 2
    drills = settings.drills
    found = SCENARIOS[scenario]
    target = settings.triage.containers.get(found.service, found.service)
    if not drills.enabled:
        print("jarvis-ir: drills.enabled is false: drills are switched off", file=sys.stderr)
        return 2
    if target not in drills.allowed_targets:
        print(f"jarvis-ir: {target} is not in drills.allowed_targets", file=sys.stderr)
        return 2
    if not yes and not sys.stdin.isatty():
        print("jarvis-ir: not a terminal: confirm the drill with --yes", file=sys.stderr)
        return 2
    base = (url or f"http://{settings.http_host}:{settings.http_port}").rstrip("/")
    headers = {"Authorization": f"Bearer {settings.api_token}"} if settings.api_token else {}
    client = httpx.Client(base_url=base, headers=headers, timeout=30)
    try:
        busy = client.get("/api/v1/incidents", params={"service": found.service, "status": "open"})
        if busy.status_code == 200 and busy.json():
            print(
                f"jarvis-ir: {found.service} already has an open incident "
                f"({busy.json()[0]['id']}); drill on a healthy stack",
                file=sys.stderr,
            )
            return 1
        if not yes:
            reply = input(f"This breaks {target} for real ({found.fault}). Go on? [y/N] ")
            if reply.strip().lower() not in ("y", "yes"):
                return 1
        started = client.post("/api/v1/drills", json={"scenario": scenario, "by": by})
        if started.status_code != 201:
            print(
                f"jarvis-ir: {base} answered {started.status_code}: {started.text}", file=sys.stderr
            )
            return 2
        drill_id = started.json()["id"]
        try:
            done = inject(scenario, target, settings)
        except (DockerException, httpx.HTTPError, RuntimeError) as exc:
            print(f"jarvis-ir: injecting the fault failed: {exc}", file=sys.stderr)
            return 2
        if not as_json:
            print(f"drill {drill_id}: {done}; following the loop …", flush=True)
        deadline = time.monotonic() + (timeout_s or drills.timeout_s)
        report: dict[str, Any] = started.json()
        while time.monotonic() < deadline:
            answer = client.get(f"/api/v1/drills/{drill_id}")
            if answer.status_code == 200:
                report = answer.json()
                if report["status"] in ("resolved", "failed"):
                    break
            time.sleep(1)
    except httpx.HTTPError as exc:
        print(f"jarvis-ir: cannot reach the responder at {base}: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    print(json.dumps(report, indent=2) if as_json else render(report))
    closed = report["status"] == "resolved" and report["verified_s"] is not None
    return 0 if closed else 1
