"""What each channel is sent for one escalation: pure formatting, no I/O.

One `Notification` (an escalation step, or the incident's resolution) becomes a Slack
incoming-webhook body, a generic JSON webhook body, an e-mail, or a PagerDuty Events
API v2 event (`dedup_key` = incident id, so every step updates one PagerDuty incident).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Literal

__all__ = [
    "Notification",
    "email_message",
    "pagerduty_event",
    "slack_payload",
    "webhook_payload",
]

# PagerDuty Events API v2 payload.severity: critical, error, warning or info.
_PD_SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning", "P3": "info"}


@dataclass(frozen=True)
class Notification:
    """One thing to tell people about an incident."""

    incident_id: str
    step: str
    level: int
    role: str
    severity: str
    trigger: str
    reason: str
    occurred_at: datetime
    event_id: str
    contacts: tuple[str, ...] = ()
    title: str = ""
    service: str = ""
    elapsed_s: float = 0.0
    action: Literal["trigger", "resolve"] = "trigger"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headline(self) -> str:
        what = self.title or self.service or "incident"
        if self.action == "resolve":
            return f"[{self.severity}] resolved: {what} ({self.incident_id})"
        return (
            f"[{self.severity}] escalation to level {self.level} ({self.role}): "
            f"{what} ({self.incident_id})"
        )


def _elapsed(seconds: float) -> str:
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def slack_payload(n: Notification) -> dict[str, Any]:
    """Slack incoming webhook: `text` (fallback and notifications) plus Block Kit blocks."""
    fields = [
        ("Severity", n.severity),
        ("Level", f"{n.level} — {n.role}"),
        ("Trigger", n.trigger),
        ("Open for", _elapsed(n.elapsed_s)),
        ("Service", n.service or "—"),
        ("Contacts", ", ".join(n.contacts) or "—"),
    ]
    return {
        "text": f"{n.headline} — {n.reason}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": n.headline[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Why:* {n.reason}"}},
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}:*\n{v}"} for k, v in fields],
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"incident `{n.incident_id}` · step `{n.step}`"}
                ],
            },
        ],
    }


def webhook_payload(n: Notification) -> dict[str, Any]:
    """The generic webhook body: every fact, flat, with stable names."""
    return {
        "kind": "escalation" if n.action == "trigger" else "resolution",
        "event_id": n.event_id,
        "incident_id": n.incident_id,
        "step": n.step,
        "level": n.level,
        "role": n.role,
        "severity": n.severity,
        "trigger": n.trigger,
        "reason": n.reason,
        "title": n.title,
        "service": n.service,
        "contacts": list(n.contacts),
        "elapsed_s": n.elapsed_s,
        "occurred_at": n.occurred_at.isoformat(),
    }


def email_message(n: Notification, sender: str) -> EmailMessage:
    """A plain-text e-mail to the level's contacts."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(n.contacts)
    msg["Subject"] = n.headline
    msg["X-Jarvis-Incident"] = n.incident_id
    msg["X-Jarvis-Step"] = n.step
    msg.set_content(
        "\n".join(
            [
                n.headline,
                "",
                f"Why:       {n.reason}",
                f"Severity:  {n.severity}",
                f"Level:     {n.level} ({n.role})",
                f"Trigger:   {n.trigger}",
                f"Open for:  {_elapsed(n.elapsed_s)}",
                f"Service:   {n.service or '-'}",
                f"Incident:  {n.incident_id}",
                f"Step:      {n.step}",
                "",
                "Acknowledge: POST /api/v1/incidents/{id}/ack".replace("{id}", n.incident_id),
            ]
        )
    )
    return msg


def pagerduty_event(n: Notification, routing_key: str, source: str) -> dict[str, Any]:
    """Events API v2: trigger (or resolve) the one PagerDuty alert of this incident."""
    if n.action == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": n.incident_id}
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": n.incident_id,
        "payload": {
            "summary": f"{n.headline} — {n.reason}"[:1024],
            "source": source,
            "severity": _PD_SEVERITY.get(n.severity, "error"),
            "timestamp": n.occurred_at.isoformat(),
            "component": n.service or None,
            "class": n.trigger,
            "custom_details": webhook_payload(n),
        },
    }
