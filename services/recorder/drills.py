"""Drills: the runbook's failures injected on purpose, and how fast the loop closed.

`SCENARIOS` is the catalogue (`jarvis-ir drill <name>`). A drill is announced with a
`DrillStarted` event on `jarvis:incidents` (`POST /api/v1/drills`, the operator's bearer
token); triage marks the next incident of its service as the drill's. `report` is pure: from
the DrillStarted and the timeline of the drill's incident it measures the time from the
fault (t = 0) to detection, to each playbook phase, to verification and to resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["SCENARIOS", "Scenario", "report"]

_FINAL = {"succeeded", "failed", "rejected", "skipped", "timed_out"}
_PHASES = ("diagnostics", "protect", "fix", "verify", "followup")


@dataclass(frozen=True)
class Scenario:
    name: str
    service: str  # canonical service whose container the fault is injected into
    fault: str  # what is done, `{target}` being the container
    runbook: str  # the runbook's scenario


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("backend-down", "backend", "docker kill {target}", "Scenario 1"),
        Scenario("postgres-down", "postgres", "docker stop {target}", "Scenario 2"),
        Scenario(
            "ollama-no-models", "ollama", "DELETE /api/delete {model} on {target}", "Scenario 3"
        ),
        Scenario("ollama-down", "ollama", "docker kill {target}", "Scenario 3"),
        Scenario(
            "memory-pressure",
            "ollama",
            "{target} holds {percent:g} % of its memory limit",
            "Scenario 4",
        ),
    )
}


def _seconds(at: datetime, zero: datetime) -> float:
    return round((at - zero).total_seconds(), 2)


def report(
    started: dict[str, Any],
    incident: dict[str, Any] | None,
    events: list[tuple[str, datetime, dict[str, Any]]],
) -> dict[str, Any]:
    """The drill's report: `started` is the DrillStarted payload, `incident` the drill's
    incident (id, status, title) or None, `events` its timeline (type, time, payload)."""
    zero = datetime.fromisoformat(started["injected_at"])
    out: dict[str, Any] = {
        "id": started["drill_id"],
        "scenario": started["scenario"],
        "service": started["service"],
        "target": started["target"],
        "fault": started["fault"],
        "by": started.get("by", "operator"),
        "injected_at": zero,
        "incident_id": incident["id"] if incident else None,
        "playbook": None,
        "detected_s": None,
        "verified_s": None,
        "resolved_s": None,
        "resolved_by": None,
        "phases": [],
        "steps": [],
        "status": "injected",
    }
    requested: dict[str, dict[str, Any]] = {}
    finished: dict[str, tuple[datetime, dict[str, Any]]] = {}
    failed = False
    for kind, at, body in events:
        if kind == "SeverityAssigned" and out["detected_s"] is None:
            out["detected_s"] = _seconds(at, zero)
            out["playbook"] = body.get("playbook")
        elif kind == "ActionRequested" and body.get("playbook"):
            requested.setdefault(body["action_id"], {**body, "_at": at})
        elif kind == "ActionCompleted" and body.get("outcome") in _FINAL:
            finished.setdefault(body["action_id"], (at, body))
            stops = body.get("on_failure", "stop") == "stop"
            if body["outcome"] in ("failed", "rejected", "timed_out") and stops:
                failed = True
            if body.get("action") == "verify.all" and body["outcome"] == "succeeded":
                out["verified_s"] = out["verified_s"] or _seconds(at, zero)
        elif kind == "IncidentResolved" and out["resolved_s"] is None:
            out["resolved_s"] = _seconds(at, zero)
            out["resolved_by"] = body.get("by")
    for action_id, asked in sorted(requested.items(), key=lambda kv: kv[1].get("step") or 0):
        done = finished.get(action_id)
        out["steps"].append(
            {
                "step": asked.get("step"),
                "phase": asked.get("phase"),
                "action": asked.get("action"),
                "target": asked.get("target") or "",
                "requested_s": _seconds(asked["_at"], zero),
                "outcome": done[1]["outcome"] if done else "pending",
                "finished_s": _seconds(done[0], zero) if done else None,
                "detail": (done[1].get("detail") or "")[:300] if done else "",
            }
        )
    for phase in _PHASES:
        steps = [s for s in out["steps"] if s["phase"] == phase]
        if steps:
            ends = [s["finished_s"] for s in steps]
            out["phases"].append(
                {
                    "phase": phase,
                    "started_s": min(s["requested_s"] for s in steps),
                    "finished_s": None if None in ends else max(ends),
                }
            )
    if out["resolved_s"] is not None:
        out["status"] = "resolved"
    elif failed:
        out["status"] = "failed"
    elif out["verified_s"] is not None:
        out["status"] = "verified"
    elif out["detected_s"] is not None:
        out["status"] = "detected"
    return out
