"""What each channel is sent for one escalation: pure formatting, no I/O.

One `Notification` (an escalation step, the incident's resolution, or another piece of
the incident's news for a route) becomes a Slack incoming-webhook body, a generic JSON
webhook body, an e-mail, or a PagerDuty Events API v2 event (`dedup_key` = incident id, so
every step updates one PagerDuty incident).

Text that comes from events is escaped for Slack (`&`, `<`, `>`), so an alert's summary can
never mention `@channel` or forge a link. Escalations carry an Acknowledge button, approval
requests Approve and Refuse (Slack interactivity: POST /webhooks/slack/interactions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Literal

__all__ = [
    "BUTTONS",
    "Notification",
    "email_message",
    "pagerduty_event",
    "slack_escape",
    "slack_payload",
    "webhook_payload",
]

# PagerDuty Events API v2 payload.severity: critical, error, warning or info.
_PD_SEVERITY = {"P0": "critical", "P1": "error", "P2": "warning", "P3": "info"}
# Slack `action_id`s of the buttons; the interactions endpoint turns each into a command.
BUTTONS = {
    "ack": ("jarvis.ack", "Acknowledge", "primary"),
    "approve": ("jarvis.approve", "Approve", "primary"),
    "refuse": ("jarvis.refuse", "Refuse", "danger"),
}


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
    # What kind of news this is (a route's `events`); `summary` heads news other than
    # escalations; `mentions` are Slack member ids of the people on call; `buttons` name
    # BUTTONS, acting on the incident (ack) or on `action_ref` (approve, refuse).
    kind: str = "escalated"
    summary: str = ""
    people: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    buttons: tuple[str, ...] = ()
    action_ref: str = ""

    @property
    def headline(self) -> str:
        what = self.title or self.service or "incident"
        if self.action == "resolve":
            return f"[{self.severity}] resolved: {what} ({self.incident_id})"
        if self.kind != "escalated":
            return f"[{self.severity}] {self.summary}: {what} ({self.incident_id})"
        return (
            f"[{self.severity}] escalation to level {self.level} ({self.role}): "
            f"{what} ({self.incident_id})"
        )


def _elapsed(seconds: float) -> str:
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def slack_escape(text: str) -> str:
    """Slack's own escaping of message text: `&`, `<` and `>` (nothing else is needed)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _buttons(n: Notification) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in n.buttons:
        action_id, label, style = BUTTONS[name]
        button: dict[str, Any] = {
            "type": "button",
            "action_id": action_id,
            "text": {"type": "plain_text", "text": label},
            "style": style,
            "value": n.incident_id if name == "ack" else n.action_ref,
        }
        if name == "approve":
            button["confirm"] = {
                "title": {"type": "plain_text", "text": "Run this action?"},
                "text": {"type": "plain_text", "text": n.summary[:300] or "Approve the action"},
                "confirm": {"type": "plain_text", "text": "Approve"},
                "deny": {"type": "plain_text", "text": "Cancel"},
            }
        out.append(button)
    return out


def slack_payload(n: Notification) -> dict[str, Any]:
    """Slack incoming webhook: `text` (fallback and notifications) plus Block Kit blocks."""
    e = slack_escape
    tag = " ".join(f"<@{m}>" for m in n.mentions)  # member ids: validated by the settings
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": n.headline[:150]}},
    ]
    if n.reason:
        label = "Why" if n.kind == "escalated" else "Detail"
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{label}:* {e(n.reason)}"}}
        )
    if n.kind == "escalated" and n.action == "trigger":
        fields = [
            ("Severity", n.severity),
            ("Level", f"{n.level} — {n.role}"),
            ("Trigger", n.trigger),
            ("Open for", _elapsed(n.elapsed_s)),
            ("Service", n.service or "—"),
            ("Contacts", ", ".join(n.contacts) or "—"),
        ]
        blocks.append(
            {
                "type": "section",
                "fields": [{"type": "mrkdwn", "text": f"*{k}:*\n{e(v)}"} for k, v in fields],
            }
        )
    if n.people or tag:
        on_call = tag or ", ".join(e(p) for p in n.people)
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*On call:* {on_call}"}}
        )
    if n.buttons:
        blocks.append(
            {"type": "actions", "block_id": f"jarvis:{n.step}"[:255], "elements": _buttons(n)}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"incident `{e(n.incident_id)}` · step `{e(n.step)}`"}
            ],
        }
    )
    text = f"{e(n.headline)} — {e(n.reason)}" if n.reason else e(n.headline)
    return {"text": f"{text} {tag}".strip(), "blocks": blocks}


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
    if n.kind != "escalated":
        lines = [n.headline, "", n.reason] if n.reason else [n.headline]
        if "ack" in n.buttons:
            lines += ["", f"Acknowledge: POST /api/v1/incidents/{n.incident_id}/ack"]
        msg.set_content("\n".join(lines))
        return msg
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
