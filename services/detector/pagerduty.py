"""PagerDuty Events API v2 bodies: validated the way PagerDuty does, mapped to AlertRaised.

Pure functions; the route in `webhooks.py` answers like PagerDuty (202 `{status, message,
dedup_key}` or 400 `{status: "invalid event", message, errors}`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.events import AlertRaised, AlertSource, AlertStatus

__all__ = ["ACTIONS", "SEVERITIES", "PagerDutyError", "PagerDutyEvent", "parse", "to_alert"]

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")


class PagerDutyError(ValueError):
    """The event is invalid; `errors` are PagerDuty-style messages naming each field."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class PagerDutyEvent:
    action: str
    dedup_key: str | None
    routing_key: str = ""
    summary: str = ""
    source: str = ""
    severity: str = ""
    timestamp: datetime | None = None
    component: str = ""
    group: str = ""
    klass: str = ""
    custom_details: Any = None
    links: list[str] = field(default_factory=list)


def _text(obj: dict[str, Any], key: str, name: str, errors: list[str], limit: int) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        errors.append(f"'{name}' must be a string")
        return ""
    if len(value) > limit:
        errors.append(f"'{name}' is too long (max {limit} characters)")
    return value


def parse(body: Any, routing_keys: Sequence[str] = ()) -> PagerDutyEvent:
    """Validate an Events API v2 body; raises PagerDutyError listing every problem."""
    if not isinstance(body, dict):
        raise PagerDutyError(["Event object must be a JSON object"])
    errors: list[str] = []
    routing_key = body.get("routing_key")
    if not isinstance(routing_key, str) or not routing_key.strip():
        errors.append("'routing_key' is missing or blank")
    elif routing_keys and not any(
        hmac.compare_digest(routing_key.encode(), known.encode()) for known in routing_keys
    ):
        errors.append("'routing_key' is not a known integration key")
        routing_key = ""
    action = body.get("event_action")
    if action not in ACTIONS:
        errors.append(f"'event_action' is missing or invalid (must be one of {', '.join(ACTIONS)})")
    dedup_key = _text(body, "dedup_key", "dedup_key", errors, 255) or None
    if action in ("acknowledge", "resolve") and not dedup_key:
        errors.append(f"'dedup_key' is required for event_action {action!r}")
    payload = body.get("payload")
    if action != "trigger":
        if errors:
            raise PagerDutyError(errors)
        return PagerDutyEvent(str(action), dedup_key, routing_key=str(routing_key))
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
        raise PagerDutyError(errors)
    summary = _text(payload, "summary", "payload.summary", errors, 1024)
    if not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    source = _text(payload, "source", "payload.source", errors, 255)
    if not source.strip():
        errors.append("'payload.source' is missing or blank")
    severity = payload.get("severity")
    if severity not in SEVERITIES:
        errors.append(
            f"'payload.severity' is missing or invalid (must be one of {', '.join(SEVERITIES)})"
        )
    timestamp = None
    raw_ts = payload.get("timestamp")
    if raw_ts is not None:
        try:
            timestamp = datetime.fromisoformat(str(raw_ts).replace("Z", "+00:00"))
            if timestamp.tzinfo is None:
                timestamp = timestamp.replace(tzinfo=UTC)
        except ValueError:
            errors.append("'payload.timestamp' is not a valid ISO 8601 timestamp")
    component = _text(payload, "component", "payload.component", errors, 255)
    group = _text(payload, "group", "payload.group", errors, 255)
    klass = _text(payload, "class", "payload.class", errors, 255)
    links = body.get("links") or []
    if not isinstance(links, list):
        errors.append("'links' must be a list")
        links = []
    if errors:
        raise PagerDutyError(errors)
    return PagerDutyEvent(
        action="trigger",
        dedup_key=dedup_key,
        routing_key=str(routing_key),
        summary=summary,
        source=source,
        severity=str(severity),
        timestamp=timestamp,
        component=component,
        group=group,
        klass=klass,
        custom_details=payload.get("custom_details"),
        links=[str(link.get("href", "")) for link in links if isinstance(link, dict)],
    )


def fingerprint(dedup_key: str) -> str:
    """The fingerprint of every alert of one PagerDuty dedup key."""
    return f"pagerduty:{dedup_key}"[:256]


def to_alert(
    event: PagerDutyEvent, dedup_key: str, now: datetime, known: tuple[str, str] | None = None
) -> AlertRaised:
    """The AlertRaised of a trigger or resolve. A resolve carries no payload: `known` is the
    (service, check) its trigger had, when the detector saw it."""
    if event.action == "resolve":
        service, check = known or ("pagerduty", "pagerduty")
        return AlertRaised(
            occurred_at=now,
            producer="detector",
            source=AlertSource.PAGERDUTY,
            fingerprint=fingerprint(dedup_key),
            service=service,
            check=check,
            status=AlertStatus.RESOLVED,
            summary=f"resolved in PagerDuty (dedup_key {dedup_key})"[:1024],
            labels={"dedup_key": dedup_key},
            ends_at=now,
        )
    details = event.custom_details
    description = [] if details is None else [json.dumps(details, default=str)[:12000]]
    description += [f"link: {link}" for link in event.links if link]
    labels = {
        "dedup_key": dedup_key,
        "source": event.source,
        "component": event.component,
        "group": event.group,
        "class": event.klass,
    }
    return AlertRaised(
        occurred_at=now,
        producer="detector",
        source=AlertSource.PAGERDUTY,
        fingerprint=fingerprint(dedup_key),
        service=(event.component or event.source)[:128],
        check=(event.klass or "pagerduty")[:128],
        summary=event.summary,
        description="\n".join(description)[:16384],
        labels={k: v for k, v in labels.items() if v},
        external_severity=event.severity,
        starts_at=event.timestamp or now,
    )
