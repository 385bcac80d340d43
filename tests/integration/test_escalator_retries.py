"""A notification outlives its receiver's outage (issue 13 case 3): transient failures are
retried, honouring Retry-After, until a deadline (1 h by default) measured on the
runtime clock; meanwhile other pages keep flowing; a page that finally fails is on the
timeline (NotificationSent delivered=false) and in a metric; a restart loses nothing."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.escalator.main import build
from services.escalator.outbox import OUTBOX_KEY
from shared.clock import ManualClock
from shared.events import EscalationDue
from shared.settings import Settings
from shared.streams import ESCALATIONS
from tests.helpers import eventually, running
from tests.integration._escalator_support import (
    escalation_due,
    http_receiver,
    notifications_of,
)

pytestmark = pytest.mark.integration

# Waits between tries are short (real time); the deadline is the default hour.
RETRY = {"timeout_s": 1.0, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}


async def _publish(redis: Redis, escalation: EscalationDue) -> None:
    await redis.xadd(ESCALATIONS.key, {"__data__": escalation.to_json()})


async def _sent(redis: Redis, incident: str) -> dict[str, Any] | None:
    records = await notifications_of(redis, incident)
    return records[0] if records else None


def _settings(make_settings: Callable[..., Settings], **urls: str) -> Settings:
    """Level 2 pages over Slack only, level 3 over the webhook only."""
    notifier: dict[str, Any] = {"retry": RETRY}
    if "slack" in urls:
        notifier["slack"] = {"webhook_url": urls["slack"]}
    if "webhook" in urls:
        notifier["webhook"] = {"url": urls["webhook"]}
    levels = {"level_2": {"channels": ["slack"]}, "level_3": {"channels": ["webhook"]}}
    return make_settings(escalator={"levels": levels, "notifier": notifier})


async def test_a_receiver_outage_is_waited_out_honouring_retry_after(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    paged, other = f"inc-{uuid.uuid4().hex[:8]}", f"inc-{uuid.uuid4().hex[:8]}"
    with (
        http_receiver(statuses=[503] * 5, retry_after="1") as slack,  # down, then back
        http_receiver() as webhook,
    ):
        settings = _settings(make_settings, slack=slack.url, webhook=webhook.url)
        async with running(settings, [build], clock=ManualClock()):
            await _publish(redis, escalation_due(paged, level=2))  # Slack only
            await eventually(lambda: _true(len(slack.requests) == 1))
            await _publish(redis, escalation_due(other, level=3))  # the webhook only
            # The other page goes out while Slack is still down: nothing waits behind it.
            other_sent = await eventually(lambda: _sent(redis, other))
            assert other_sent["delivered"] is True
            assert await _sent(redis, paged) is None
            sent = await eventually(lambda: _sent(redis, paged), timeout=20)
    assert sent["delivered"] is True
    assert sent["attempts"] == 6
    times = [r["at"] for r in slack.requests]
    assert len(times) == 6
    # Never sooner than the receiver asked (Retry-After: 1), though backoff alone is 0.2 s.
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(times))
    assert await redis.zcard(OUTBOX_KEY) == 0


async def test_a_page_still_failing_at_the_deadline_is_recorded_as_failed(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    incident = f"inc-{uuid.uuid4().hex[:8]}"
    labels = {"channel": "webhook", "result": "failed"}
    failed_before = REGISTRY.get_sample_value("jarvis_escalator_notifications_total", labels)
    with http_receiver(final_status=503) as webhook:  # down for good
        async with running(_settings(make_settings, webhook=webhook.url), [build], clock=clock):
            await _publish(redis, escalation_due(incident, level=3))
            await eventually(lambda: _true(len(webhook.requests) >= 10))
            assert await _sent(redis, incident) is None  # ten tries: not given up yet
            clock.advance(timedelta(hours=1))
            sent = await eventually(lambda: _sent(redis, incident), timeout=10)
            tries = len(webhook.requests)
            await asyncio.sleep(0.5)
    assert sent["delivered"] is False
    assert sent["attempts"] == tries
    assert "gave up after" in sent["detail"]
    assert "HTTP 503" in sent["detail"]
    assert len(webhook.requests) == tries  # and no try after that
    failed = REGISTRY.get_sample_value("jarvis_escalator_notifications_total", labels)
    assert failed == (failed_before or 0) + 1
    assert await redis.zcard(OUTBOX_KEY) == 0


async def test_a_retry_waiting_in_the_outbox_survives_a_restart(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    incident = f"inc-{uuid.uuid4().hex[:8]}"
    with http_receiver(statuses=[503], retry_after="2") as webhook:
        settings = _settings(make_settings, webhook=webhook.url)
        async with running(settings, [build]):
            await _publish(redis, escalation_due(incident, level=3))
            await eventually(lambda: _true(len(webhook.requests) == 1))
            await eventually(lambda: _outbox_has(redis, 1))
        assert await _sent(redis, incident) is None  # stopped while the retry waits
        async with running(settings, [build]):  # started again
            sent = await eventually(lambda: _sent(redis, incident), timeout=15)
    assert sent["delivered"] is True
    assert [r["status"] for r in webhook.requests] == [503, 200]


async def _true(value: bool) -> bool:
    return value


async def _outbox_has(redis: Redis, count: int) -> bool:
    return int(await redis.zcard(OUTBOX_KEY)) == count
