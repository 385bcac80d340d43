"""Pending approvals: dangerous actions that wait for an operator and block their playbook.

An action is pending from the remediator's `awaiting_approval` answer until its final
answer (run, refused, timed out). What will run is shown as the runbook writes it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.recorder.db import as_utc
from services.recorder.models import EventRow
from services.recorder.queries import Reader

__all__ = ["PendingApproval", "command_for", "make_approvals_router", "pending_approvals"]


class PendingApproval(BaseModel):
    action_id: str = Field(description="Approve or refuse it at /api/v1/actions/{action_id}/….")
    incident_id: str = Field(description="The incident it belongs to.")
    incident_title: str = Field(description="The incident's title.")
    severity: str = Field(description="The incident's severity.")
    action: str = Field(description="The action's name (shared/actions.py).")
    target: str = Field(description="What it acts on.")
    params: dict[str, Any] = Field(description="Its parameters, exactly as requested.")
    command: str = Field(description="What will run, as the runbook writes it.")
    requested_by: str = Field(description="The playbook (playbook:<name>) or operator.")
    playbook: str | None = Field(description="The playbook it blocks.")
    step: int | None = Field(description="Its step in the playbook.")
    requested_at: datetime = Field(description="When it was requested.")
    waiting_since: datetime = Field(description="When the remediator started waiting.")
    expires_at: datetime = Field(description="When it times out unapproved (not run).")
    detail: str = Field(description="The remediator's words.")
    approved_by: str | None = Field(description="Approved, the remediator has not answered yet.")
    refused_by: str | None = Field(description="Refused, the remediator has not answered yet.")


def command_for(action: str, target: str, params: dict[str, Any]) -> str:
    """The runbook's command for an action (what an operator would have typed)."""
    label = params.get("label")
    where = f" --filter label={label}" if label else ""
    container = target or "<container>"
    commands = {
        "docker.system_prune": f"docker system prune -f{where}",
        "docker.volume_prune": f"docker volume prune -f{where}",
        "redis.flushdb": f"docker exec {target or 'sutazai-redis'} redis-cli FLUSHDB",
        "docker.restart": f"docker restart {container}",
        "docker.stop": f"docker stop {container}",
        "docker.start": f"docker start {container}",
        "redis.bgsave": f"docker exec {target or 'sutazai-redis'} redis-cli BGSAVE",
        "ollama.pull": f"docker exec sutazai-ollama ollama pull {params.get('model', 'tinyllama')}",
    }
    if action in commands:
        return commands[action]
    shown = " ".join(f"{k}={v}" for k, v in sorted(params.items()))
    return " ".join(part for part in (action, target, shown) if part)


def pending_approvals(
    rows: list[EventRow], incidents: dict[str, tuple[str, str]], timeout_s: float
) -> list[PendingApproval]:
    """The actions of `rows` (see Reader.actions_of_unresolved) that wait for approval;
    `incidents` maps an incident id to its title and severity."""
    by_action: dict[str, dict[str, EventRow]] = {}
    for row in rows:
        kinds = by_action.setdefault(str(row.action_id), {})
        kind = row.event_type
        if kind == "ActionCompleted":
            kind = "awaiting" if row.payload.get("outcome") == "awaiting_approval" else "final"
        kinds.setdefault(kind, row)
    out: list[PendingApproval] = []
    for action_id, kinds in by_action.items():
        request, awaiting = kinds.get("ActionRequested"), kinds.get("awaiting")
        if request is None or awaiting is None or "final" in kinds:
            continue
        asked = request.payload
        title, severity = incidents.get(str(request.incident_id), ("", ""))
        since = as_utc(awaiting.occurred_at)
        approved, refused = kinds.get("ActionApproved"), kinds.get("ActionRefused")
        out.append(
            PendingApproval(
                action_id=action_id,
                incident_id=str(request.incident_id),
                incident_title=title,
                severity=severity,
                action=str(asked.get("action", "")),
                target=str(asked.get("target", "")),
                params=dict(asked.get("params") or {}),
                command=command_for(
                    str(asked.get("action", "")),
                    str(asked.get("target", "")),
                    dict(asked.get("params") or {}),
                ),
                requested_by=str(asked.get("requested_by", "")),
                playbook=asked.get("playbook"),
                step=asked.get("step"),
                requested_at=as_utc(request.occurred_at),
                waiting_since=since,
                expires_at=since + timedelta(seconds=timeout_s),
                detail=str(awaiting.payload.get("detail", "")),
                approved_by=approved.payload.get("approver") if approved else None,
                refused_by=refused.payload.get("by") if refused else None,
            )
        )
    return sorted(out, key=lambda p: p.waiting_since)


def make_approvals_router(reader: Reader, timeout_s: float) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["timeline"])

    @router.get("/approvals", response_model=list[PendingApproval])
    async def list_approvals() -> list[PendingApproval]:
        """Actions waiting for an operator's approval, oldest first, with what will run
        (approve: POST /api/v1/actions/{id}/approve, refuse: …/refuse)."""
        rows = await reader.actions_of_unresolved()
        ids = {str(r.incident_id) for r in rows}
        incidents: dict[str, tuple[str, str]] = {}
        for incident_id in ids:
            found = await reader.get_incident(incident_id)
            if found is not None:
                incidents[incident_id] = (found.title, found.severity)
        return pending_approvals(rows, incidents, timeout_s)

    return router
