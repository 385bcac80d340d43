"""Routing decisions and Slack formatting: which routes hear which news, and what a Slack
message carries (escaped text, mentions, buttons)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.escalator.messages import Notification, slack_payload
from services.escalator.routing import route_channels
from shared.settings import RoutesSettings

pytestmark = pytest.mark.unit


def test_the_runbook_defaults_route_by_severity_and_audience() -> None:
    routes = RoutesSettings()
    assert route_channels(routes, "opened", "P0") == [
        "slack:critical",
        "email:critical",
        "slack:engineering",
        "email:engineering",
        "slack:management",
        "email:management",
    ]
    assert route_channels(routes, "opened", "P2") == ["slack:general", "email:general"]
    assert route_channels(routes, "remediation", "P3") == ["slack:ops", "email:ops"]
    assert route_channels(routes, "escalated", "P0", level=3) == [
        "slack:critical",
        "email:critical",
    ]
    assert "email:management" in route_channels(routes, "escalated", "P0", level=4)
    assert route_channels(routes, "severity_changed", "P1") == ["slack:critical", "email:critical"]


def test_a_route_keeps_the_defaults_it_does_not_override() -> None:
    routes = RoutesSettings.model_validate({"general": {"severities": ["P3"]}})
    assert routes.general.slack_channel == "#incidents-general"
    assert routes.general.emails == ["incident-response@company.com"]
    assert route_channels(routes, "opened", "P2") == []


def _notification(**fields: object) -> Notification:
    base: dict[str, object] = {
        "incident_id": "inc-1",
        "step": "time:900s:L1",
        "level": 1,
        "role": "on-call engineer",
        "severity": "P1",
        "trigger": "time",
        "reason": "<!channel> & <https://evil|click>",
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
        "event_id": "e-1",
        "title": "backend <down>",
    }
    base.update(fields)
    return Notification(**base)  # type: ignore[arg-type]


def test_slack_text_from_events_is_escaped_and_mentions_are_real() -> None:
    body = slack_payload(_notification(mentions=("U0BOB",), people=("bob",), buttons=("ack",)))
    assert "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in body["text"]
    assert "<!channel>" not in str(body)
    assert body["text"].endswith("<@U0BOB>")
    (actions,) = [b for b in body["blocks"] if b["type"] == "actions"]
    (ack,) = actions["elements"]
    assert (ack["action_id"], ack["value"], ack["text"]["text"]) == (
        "jarvis.ack",
        "inc-1",
        "Acknowledge",
    )


def test_an_approval_request_carries_approve_with_a_confirmation_and_refuse() -> None:
    body = slack_payload(
        _notification(
            kind="approval_requested",
            summary="approval needed: redis.flushdb on jarvis-redis",
            step="approval:a-1",
            buttons=("approve", "refuse"),
            action_ref="a-1",
        )
    )
    assert body["blocks"][0]["text"]["text"].startswith(
        "[P1] approval needed: redis.flushdb on jarvis-redis"
    )
    (actions,) = [b for b in body["blocks"] if b["type"] == "actions"]
    approve, refuse = actions["elements"]
    assert (approve["action_id"], approve["value"]) == ("jarvis.approve", "a-1")
    assert "confirm" in approve
    assert (refuse["action_id"], refuse["value"], refuse["style"]) == (
        "jarvis.refuse",
        "a-1",
        "danger",
    )
