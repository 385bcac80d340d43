"""Routes by severity and audience (runbook "Communication Protocols"), over real Slack
webhook receivers and a real SMTP server: #incidents-critical for P0/P1,
#incidents-general for P2/P3, #jarvis-ops for remediation, the e-mail lists
incident-response@, engineering@ and management@ (executive updates)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from email import message_from_bytes
from typing import Any

import pytest
from redis.asyncio import Redis

from services.escalator.main import build
from shared.bus import EventBus
from shared.clock import ManualClock
from shared.events import ActionCompleted, ActionOutcome, IncidentResolved, Severity
from shared.settings import Settings
from tests.helpers import eventually, running
from tests.integration._escalator_support import http_receiver, notifications_of, severity_event
from tests.integration.test_escalator_notifiers import FAST_RETRY, MailHandler, smtp_receiver

pytestmark = pytest.mark.integration


def _posts(receiver: Any, incident: str) -> list[str]:
    return [b["text"] for b in receiver.bodies() if incident in str(b)]


def _mails(mail: MailHandler, incident: str) -> list[tuple[str, str]]:
    """(recipient, subject) of each message about `incident`."""
    out = []
    for envelope in mail.messages:
        message = message_from_bytes(envelope.original_content or b"")
        if message["X-Jarvis-Incident"] == incident:
            out += [(rcpt, str(message["Subject"])) for rcpt in envelope.rcpt_tos]
    return out


async def test_news_goes_where_the_runbook_says_by_severity_and_audience(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    clock = ManualClock()
    mail = MailHandler()
    with (
        http_receiver() as critical,
        http_receiver() as general,
        http_receiver() as ops,
    ):
        async with smtp_receiver(mail) as smtp_port:
            settings = make_settings(
                escalator={
                    "notifier": {
                        "retry": FAST_RETRY,
                        "email": {
                            "smtp_host": "127.0.0.1",
                            "smtp_port": smtp_port,
                            "starttls": False,
                        },
                    },
                    # Levels notify by e-mail only, so the Slack posts here are the routes'.
                    "levels": {
                        name: {"channels": ["email"]}
                        for name in ("level_1", "level_2", "level_3", "level_4", "executive")
                    },
                    "routes": {
                        "critical": {"slack_webhook_url": critical.url},
                        "general": {"slack_webhook_url": general.url},
                        "ops": {"slack_webhook_url": ops.url},
                    },
                }
            )
            async with running(settings, [build], clock=clock) as (client, _):
                channels = (await client.get("/health")).json()["services"]["escalator"]
                assert "slack:critical" in channels["channels"]
                assert "email:management" in channels["channels"]
                bus = EventBus(redis, producer="test")
                big, small = str(uuid.uuid4()), str(uuid.uuid4())
                await bus.publish(
                    severity_event(big, Severity.P0, clock.now(), title="<!channel> API down")
                )
                await bus.publish(severity_event(small, Severity.P3, clock.now()))

                # Openings: P0 in #incidents-critical, P3 in #incidents-general.
                await eventually(lambda: _has(critical, big, 1))
                await eventually(lambda: _has(general, small, 1))
                (opened,) = _posts(critical, big)
                assert "[P0] incident opened" in opened
                assert "&lt;!channel&gt;" in opened  # escaped: no one is pinged by a title
                assert "<!channel>" not in opened
                assert _posts(general, big) == []
                assert _posts(critical, small) == []
                await eventually(lambda: _mail_count(mail, big, 3))
                assert sorted(r for r, _ in _mails(mail, big)) == [
                    "engineering@company.com",
                    "incident-response@company.com",
                    "management@company.com",
                ]
                await eventually(lambda: _mail_count(mail, small, 1))
                assert [r for r, _ in _mails(mail, small)] == ["incident-response@company.com"]

                # P3 → P1: the change is told in #incidents-critical.
                await bus.publish(
                    severity_event(
                        small,
                        Severity.P1,
                        clock.now(),
                        occurred_at=clock.now() + timedelta(seconds=1),
                        previous=Severity.P3,
                    )
                )
                await eventually(lambda: _has(critical, small, 1))
                assert "severity P3 → P1" in _posts(critical, small)[0]

                # A real remediation result goes to #jarvis-ops; a dry run does not.
                for dry in (True, False):
                    await bus.publish(
                        ActionCompleted(
                            incident_id=big,
                            action_id=str(uuid.uuid4()),
                            action="docker.restart",
                            target="backend",
                            outcome=ActionOutcome.SUCCEEDED,
                            dry_run=dry,
                            detail="restarted",
                        )
                    )
                await eventually(lambda: _has(ops, big, 1))
                assert "docker.restart on backend succeeded" in _posts(ops, big)[0]

                # Escalation to level 2 (15 min): the critical channel and the core team
                # hear of it; management only from level 4 (4 h) on.
                clock.advance(timedelta(minutes=15))
                await eventually(lambda: _has(critical, big, 2))
                assert "escalation to level 2" in _posts(critical, big)[1]
                await eventually(lambda: _mail_count(mail, big, 5))
                subjects = [s for r, s in _mails(mail, big) if r == "management@company.com"]
                assert not any("escalation" in s for s in subjects)
                clock.advance(timedelta(hours=4))  # the 1 h (level 3) and 4 h (level 4) steps
                await eventually(lambda: _mail_count(mail, big, 10))
                subjects = [s for r, s in _mails(mail, big) if r == "management@company.com"]
                assert any("escalation to level 4" in s for s in subjects)

                # Resolution: the incident's channel and the lists that heard the opening.
                await bus.publish(IncidentResolved(incident_id=big, by="alice", note="fixed"))
                await eventually(lambda: _has(critical, big, 5))
                assert any("[P0] resolved" in post for post in _posts(critical, big))
                await eventually(lambda: _mail_count(mail, big, 13))
                resolved = [r for r, s in _mails(mail, big) if "resolved" in s]
                assert sorted(resolved) == [
                    "engineering@company.com",
                    "incident-response@company.com",
                    "management@company.com",
                ]
                # Every post and mail is on the timeline, once per route channel and step.
                sent = await notifications_of(redis, big)
                keys = [(n["channel"], n["step"]) for n in sent]
                assert len(keys) == len(set(keys))
                assert ("slack:critical", "opened") in keys
                assert ("email:management", "resolved") in keys


async def _has(receiver: Any, incident: str, n: int) -> bool:
    return len(_posts(receiver, incident)) >= n


async def _mail_count(mail: MailHandler, incident: str, n: int) -> bool:
    return len(_mails(mail, incident)) >= n
