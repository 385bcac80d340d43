"""What each channel is sent, and the retry loop's decisions (a scripted notifier)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.escalator.messages import (
    Notification,
    email_message,
    pagerduty_event,
    slack_payload,
    webhook_payload,
)
from services.escalator.notifiers import DeliveryError, deliver
from shared.settings import RetrySettings

pytestmark = pytest.mark.unit

NOTE = Notification(
    incident_id="inc-1",
    step="time:3600s:L3",
    level=3,
    role="technical director",
    severity="P0",
    trigger="time",
    reason="P0 open for 1:00:00",
    occurred_at=datetime(2026, 5, 1, 1, tzinfo=UTC),
    event_id="00000000-0000-0000-0000-000000000001",
    contacts=("tech-director@company.com",),
    title="backend down",
    service="backend",
    elapsed_s=3600,
)


def test_slack_has_text_and_blocks() -> None:
    body = slack_payload(NOTE)
    assert body["text"].startswith("[P0] escalation to level 3 (technical director): backend down")
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "context"]
    fields = [f["text"] for f in body["blocks"][2]["fields"]]
    assert "*Open for:*\n1h00m" in fields


def test_webhook_and_pagerduty_bodies() -> None:
    hook = webhook_payload(NOTE)
    assert hook["kind"] == "escalation"
    assert hook["level"] == 3
    assert hook["occurred_at"] == "2026-05-01T01:00:00+00:00"
    trigger = pagerduty_event(NOTE, "KEY", "jarvis")
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "inc-1"
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["custom_details"] == hook
    resolve = pagerduty_event(
        Notification(**{**NOTE.__dict__, "action": "resolve"}), "KEY", "jarvis"
    )
    assert resolve == {"routing_key": "KEY", "event_action": "resolve", "dedup_key": "inc-1"}


def test_email() -> None:
    msg = email_message(NOTE, "jarvis@example.org")
    assert msg["To"] == "tech-director@company.com"
    assert msg["From"] == "jarvis@example.org"
    assert "level 3" in msg["Subject"]
    assert "POST /api/v1/incidents/inc-1/ack" in msg.get_content()


class Scripted:
    channel = "scripted"

    def __init__(self, outcomes: list[DeliveryError | str]) -> None:
        self.outcomes = outcomes
        self.calls = 0

    async def send(self, notification: Notification) -> str:
        outcome = self.outcomes[self.calls]
        self.calls += 1
        if isinstance(outcome, DeliveryError):
            raise outcome
        return outcome


RETRY = RetrySettings(max_attempts=4, backoff_initial_s=1.0, backoff_max_s=3.0)


async def test_transient_failures_back_off_exponentially_then_succeed() -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Scripted(
        [
            DeliveryError("HTTP 503", transient=True),
            DeliveryError("HTTP 500", transient=True),
            DeliveryError("timed out", transient=True),
            "HTTP 200 ok",
        ]
    )
    result = await deliver(flaky, NOTE, RETRY, sleep=sleep)
    assert (result.delivered, result.attempts, result.detail) == (True, 4, "HTTP 200 ok")
    assert len(waits) == 3
    for wait, base in zip(waits, [1.0, 2.0, 3.0], strict=True):  # capped at backoff_max_s
        assert base <= wait <= base * 1.1


async def test_permanent_failure_stops_and_exhaustion_reports_the_last_error() -> None:
    async def sleep(seconds: float) -> None:
        return None

    bad = Scripted([DeliveryError("HTTP 400 bad payload", transient=False)])
    result = await deliver(bad, NOTE, RETRY, sleep=sleep)
    assert (result.delivered, result.attempts, result.detail) == (False, 1, "HTTP 400 bad payload")
    down = Scripted([DeliveryError(f"HTTP 50{i}", transient=True) for i in range(4)])
    result = await deliver(down, NOTE, RETRY, sleep=sleep)
    assert (result.delivered, result.attempts, result.detail) == (False, 4, "HTTP 503")
