"""One timeline event in words: the Event / Action Taken / Decision Maker columns of the
runbook's "Incident Timeline" table (Root Cause Analysis Process, step 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.recorder.markdown import code, text
from shared.events import ROLE_TITLES

__all__ = ["ROLE_TITLES", "Line", "narrate"]


@dataclass(frozen=True)
class Line:
    event: str
    action: str
    decision_maker: str


def _alert(e: dict[str, Any], count: int) -> Line:
    what = (
        f"Alert {text(e.get('status', 'firing'))}: {text(e.get('service'))}/{text(e.get('check'))}"
    )
    if e.get("summary"):
        what += f" — {text(e['summary'])}"
    if count > 1:
        what += f" (×{count})"
    sender = f"{text(e.get('producer', 'detector'))} ({text(e.get('source'))})"
    return Line(what, "Alert received", sender)


def _severity(e: dict[str, Any]) -> Line:
    if e.get("previous_severity"):
        action = f"Severity raised {text(e['previous_severity'])} → {text(e['severity'])}"
    else:
        action = f"{text(e['severity'])} declared"
    return Line(f"Severity assessed: {text(e.get('reason', ''))}", action, "triage (automatic)")


def _on(e: dict[str, Any]) -> str:
    return f" on {text(e['target'])}" if e.get("target") else ""


def _action_requested(e: dict[str, Any]) -> Line:
    action = "Waiting for approval" if e.get("dangerous") else "Requested"
    what = f"Action {code(e.get('action'))}{_on(e)}"
    return Line(what, action, text(e.get("requested_by", "triage")))


def _action_completed(e: dict[str, Any]) -> Line:
    outcome = text(e.get("outcome", ""))
    if e.get("dry_run"):
        outcome += " (dry run)"
    detail = f": {text(e['detail'])}" if e.get("detail") else ""
    return Line(f"Action {code(e.get('action'))}{_on(e)} finished", outcome + detail, "remediator")


def _escalation(e: dict[str, Any]) -> Line:
    who = ", ".join(text(c) for c in e.get("contacts") or []) or "configured contacts"
    return Line(
        f"Escalation to level {text(e.get('level'))} ({text(e.get('trigger'))}): "
        f"{text(e.get('reason', ''))}",
        f"Notified {who}",
        "escalator (automatic)",
    )


def _notification(e: dict[str, Any]) -> Line:
    ok = "delivered" if e.get("delivered") else "NOT delivered"
    what = f"Notification via {text(e.get('channel'))} (level {text(e.get('level'))})"
    return Line(what, ok, "escalator")


def narrate(payload: dict[str, Any], count: int = 1) -> Line:
    """The three table columns for one stored event, as Markdown: everything taken from the
    event is escaped (`markdown.text`, `markdown.code`)."""
    kind = payload.get("event_type")
    e = payload
    if kind == "AlertRaised":
        return _alert(e, count)
    if kind == "SeverityAssigned":
        return _severity(e)
    if kind == "AlertCorrelated":
        what = f"Alert {text(e.get('status'))} for {text(e.get('service'))} joined the incident"
        why = text(e.get("reason") or "same incident")
        return Line(what, f"Correlated ({why})", "triage")
    if kind == "ActionRequested":
        return _action_requested(e)
    if kind == "ActionApproved":
        return Line(
            "Action approved", f"Approved {text(e.get('action_id'))}", text(e.get("approver"))
        )
    if kind == "ActionRefused":
        why = f": {text(e['reason'])}" if e.get("reason") else ""
        return Line("Action refused", f"Refused {text(e.get('action_id'))}{why}", text(e.get("by")))
    if kind == "StatusUpdatePosted":
        status = f"Status page: {text(e.get('status'))}"
        return Line(status, text(e.get("text", "")), text(e.get("by")))
    if kind == "ActionCompleted":
        return _action_completed(e)
    if kind == "EscalationDue":
        return _escalation(e)
    if kind == "NotificationSent":
        return _notification(e)
    if kind == "IncidentAcknowledged":
        return Line("Incident acknowledged", "Acknowledged", text(e.get("by")))
    if kind == "RoleAssigned":
        title = ROLE_TITLES.get(str(e.get("role")), text(e.get("role")))
        by = "escalator (on-call schedule)" if e.get("producer") == "escalator" else "operator"
        return Line(f"{title} assigned", f"{text(e.get('person'))} is {title}", by)
    if kind == "NoteAdded":
        return Line(f"Note: {text(e.get('text', ''))}", "Noted", text(e.get("author")))
    if kind == "IncidentResolved":
        by = "triage (quiet period)" if e.get("automatic") else text(e.get("by"))
        note = text(e.get("note")) if e.get("note") else "Incident closed"
        return Line("Incident resolved", note, by)
    return Line(text(kind), "", text(e.get("producer", "")))
