"""One timeline event in words: the Event / Action Taken / Decision Maker columns of the
runbook's "Incident Timeline" table (Root Cause Analysis Process, step 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.events import ROLE_TITLES

__all__ = ["ROLE_TITLES", "Line", "narrate"]


@dataclass(frozen=True)
class Line:
    event: str
    action: str
    decision_maker: str


def _alert(e: dict[str, Any], count: int) -> Line:
    what = f"Alert {e.get('status', 'firing')}: {e.get('service')}/{e.get('check')}"
    if e.get("summary"):
        what += f" — {e['summary']}"
    if count > 1:
        what += f" (×{count})"
    return Line(what, "Alert received", f"{e.get('producer', 'detector')} ({e.get('source')})")


def _severity(e: dict[str, Any]) -> Line:
    if e.get("previous_severity"):
        action = f"Severity raised {e['previous_severity']} → {e['severity']}"
    else:
        action = f"{e['severity']} declared"
    return Line(f"Severity assessed: {e.get('reason', '')}", action, "triage (automatic)")


def _action_requested(e: dict[str, Any]) -> Line:
    target = f" on {e['target']}" if e.get("target") else ""
    action = "Waiting for approval" if e.get("dangerous") else "Requested"
    return Line(f"Action `{e.get('action')}`{target}", action, str(e.get("requested_by", "triage")))


def _action_completed(e: dict[str, Any]) -> Line:
    target = f" on {e['target']}" if e.get("target") else ""
    outcome = str(e.get("outcome", ""))
    if e.get("dry_run"):
        outcome += " (dry run)"
    detail = f": {e['detail']}" if e.get("detail") else ""
    return Line(f"Action `{e.get('action')}`{target} finished", outcome + detail, "remediator")


def _escalation(e: dict[str, Any]) -> Line:
    who = ", ".join(e.get("contacts") or []) or "configured contacts"
    return Line(
        f"Escalation to level {e.get('level')} ({e.get('trigger')}): {e.get('reason', '')}",
        f"Notified {who}",
        "escalator (automatic)",
    )


def _notification(e: dict[str, Any]) -> Line:
    ok = "delivered" if e.get("delivered") else "NOT delivered"
    return Line(f"Notification via {e.get('channel')} (level {e.get('level')})", ok, "escalator")


def narrate(payload: dict[str, Any], count: int = 1) -> Line:
    """The three table columns for one stored event."""
    kind = payload.get("event_type")
    e = payload
    if kind == "AlertRaised":
        return _alert(e, count)
    if kind == "SeverityAssigned":
        return _severity(e)
    if kind == "AlertCorrelated":
        what = f"Alert {e.get('status')} for {e.get('service')} joined the incident"
        return Line(what, f"Correlated ({e.get('reason') or 'same incident'})", "triage")
    if kind == "ActionRequested":
        return _action_requested(e)
    if kind == "ActionApproved":
        return Line("Action approved", f"Approved {e.get('action_id')}", str(e.get("approver")))
    if kind == "ActionRefused":
        why = f": {e['reason']}" if e.get("reason") else ""
        return Line("Action refused", f"Refused {e.get('action_id')}{why}", str(e.get("by")))
    if kind == "StatusUpdatePosted":
        return Line(f"Status page: {e.get('status')}", str(e.get("text", "")), str(e.get("by")))
    if kind == "ActionCompleted":
        return _action_completed(e)
    if kind == "EscalationDue":
        return _escalation(e)
    if kind == "NotificationSent":
        return _notification(e)
    if kind == "IncidentAcknowledged":
        return Line("Incident acknowledged", "Acknowledged", str(e.get("by")))
    if kind == "RoleAssigned":
        title = ROLE_TITLES.get(str(e.get("role")), str(e.get("role")))
        by = "escalator (on-call schedule)" if e.get("producer") == "escalator" else "operator"
        return Line(f"{title} assigned", f"{e.get('person')} is {title}", by)
    if kind == "NoteAdded":
        return Line(f"Note: {e.get('text', '')}", "Noted", str(e.get("author")))
    if kind == "IncidentResolved":
        by = "triage (quiet period)" if e.get("automatic") else str(e.get("by"))
        note = e.get("note") or "Incident closed"
        return Line("Incident resolved", note, by)
    return Line(str(kind), "", str(e.get("producer", "")))
