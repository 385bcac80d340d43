"""What each channel is sent, and the retry decisions (a scripted notifier)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from services.escalator.messages import (
    Notification,
    email_message,
    pagerduty_event,
    slack_payload,
    webhook_payload,
)
from services.escalator.notifiers import (
    DeliveryError,
    attempt,
    retry_after_seconds,
    retry_wait,
)
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


RETRY = RetrySettings(backoff_initial_s=1.0, backoff_max_s=3.0, deadline_s=3600)


def test_retry_waits_double_up_to_the_cap_with_jitter() -> None:
    for attempts, step in [(1, 1.0), (2, 2.0), (3, 3.0), (9, 3.0)]:  # capped at backoff_max_s
        wait = retry_wait(attempts=attempts, waited_s=0, retry=RETRY, retry_after_s=None)
        assert wait is not None
        assert step / 2 <= wait <= step


def test_retry_after_is_honoured_and_the_deadline_ends_the_retries() -> None:
    assert retry_wait(attempts=1, waited_s=0, retry=RETRY, retry_after_s=120) == 120
    # A try that would come after the deadline is not made: the notification has failed.
    assert retry_wait(attempts=50, waited_s=3599, retry=RETRY, retry_after_s=None) is None
    assert retry_wait(attempts=1, waited_s=3000, retry=RETRY, retry_after_s=601) is None
    # With max_attempts, that many tries and no more.
    capped = RETRY.model_copy(update={"max_attempts": 3})
    assert retry_wait(attempts=2, waited_s=0, retry=capped, retry_after_s=None) is not None
    assert retry_wait(attempts=3, waited_s=0, retry=capped, retry_after_s=None) is None


def test_retry_after_header_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    assert retry_after_seconds("30", now) == 30
    assert retry_after_seconds("Fri, 01 May 2026 12:01:00 GMT", now) == 60
    assert retry_after_seconds("Fri, 01 May 2026 11:00:00 GMT", now) == 0  # in the past
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


async def test_one_attempt_reports_success_transient_and_permanent_failures() -> None:
    flaky = Scripted([DeliveryError("HTTP 429", transient=True, retry_after_s=7.0), "HTTP 200 ok"])
    first = await attempt(flaky, NOTE, timeout_s=1)
    assert (first.delivered, first.transient, first.retry_after_s) == (False, True, 7.0)
    assert first.detail == "HTTP 429"
    second = await attempt(flaky, NOTE, timeout_s=1)
    assert (second.delivered, second.detail) == (True, "HTTP 200 ok")
    bad = await attempt(Scripted([DeliveryError("HTTP 400", transient=False)]), NOTE, 1)
    assert (bad.delivered, bad.transient) == (False, False)


async def test_an_attempt_that_hangs_is_a_transient_failure() -> None:
    class Hangs:
        channel = "hangs"

        async def send(self, notification: Notification) -> str:
            await asyncio.sleep(60)
            return "never"

    result = await attempt(Hangs(), NOTE, timeout_s=0.05)
    assert (result.delivered, result.transient) == (False, True)
    assert "timed out" in result.detail
