"""Notifications over their real protocols to real receivers on 127.0.0.1: Slack incoming
webhook, a generic JSON webhook, PagerDuty Events API v2 (HTTP stand-ins) and SMTP
(aiosmtpd) — retries, permanent failures, no duplicates, and the timeline records."""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from redis.asyncio import Redis

from services.escalator.main import build
from services.escalator.messages import Notification
from services.escalator.outbox import Outbox, PendingDelivery
from shared.bus import EventBus
from shared.clock import ManualClock
from shared.consumer import ensure_group
from shared.events import IncidentResolved, Severity
from shared.settings import ConfigError, Settings
from shared.streams import DEAD_LETTER, ESCALATIONS
from tests.helpers import eventually, running, settled
from tests.integration._escalator_support import (
    escalation_due,
    http_receiver,
    notifications_of,
    severity_event,
)
from tests.tls import self_signed

pytestmark = pytest.mark.integration

FAST_RETRY = {"timeout_s": 0.5, "max_attempts": 4, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}
# These tests are about a level's own channels: the runbook's e-mail lists (routes, tested in
# test_escalator_routes.py) would also hear of escalations once SMTP is configured.
NO_ROUTE_MAIL = {
    name: {"emails": []} for name in ("critical", "general", "engineering", "management")
}


class MailHandler:
    """aiosmtpd handler: refuses the first `fail_first` messages with 451, keeps the rest."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.refused = 0
        self.messages: list[Envelope] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if self.refused < self.fail_first:
            self.refused += 1
            return "451 4.3.0 mailbox busy, try again"
        self.messages.append(envelope)
        return "250 2.0.0 queued"


AUTH_SEEN: list[tuple[bytes, bool]] = []  # (login, over TLS) of every AUTH the receivers got


def _authenticator(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"jarvis", b"s3cret")
    if isinstance(data, LoginPassword):
        AUTH_SEEN.append((data.login, session.ssl is not None))
    return AuthResult(success=ok)


@asynccontextmanager
async def smtp_receiver(
    handler: MailHandler, *, auth: bool = False, tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """aiosmtpd on loopback; with `tls` it offers STARTTLS (and wants it before AUTH)."""
    loop = asyncio.get_running_loop()

    def factory() -> SMTPServer:
        return SMTPServer(
            handler,
            hostname="mx.test",
            loop=loop,
            auth_required=auth,
            # Without TLS the receiver takes AUTH in clear: the client must be what refuses.
            auth_require_tls=tls is not None,
            authenticator=_authenticator if auth else None,
            tls_context=tls,
        )

    server = await loop.create_server(factory, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _incident() -> str:
    return f"inc-{uuid.uuid4().hex[:12]}"


async def _delivered(redis: Redis, incident: str) -> dict[str, dict[str, Any]]:
    return {n["channel"]: n for n in await notifications_of(redis, incident)}


async def test_an_escalation_reaches_every_channel_over_its_protocol(
    redis: Redis, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    clock = ManualClock()
    incident = _incident()
    mail = MailHandler()
    cert, key = self_signed(tmp_path / "tls")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    AUTH_SEEN.clear()
    with (
        http_receiver() as slack,
        http_receiver() as hook,
        http_receiver(final_status=202) as pagerduty,
    ):
        async with smtp_receiver(mail, auth=True, tls=tls) as smtp_port:
            settings = make_settings(
                escalator={
                    "routes": NO_ROUTE_MAIL,
                    "notifier": {
                        "retry": FAST_RETRY,
                        "slack": {"webhook_url": slack.url},
                        "webhook": {"url": hook.url, "headers": {"Authorization": "Bearer t"}},
                        "pagerduty": {"routing_key": "R0UT1NG", "events_url": pagerduty.url},
                        "email": {
                            "smtp_host": "127.0.0.1",
                            "smtp_port": smtp_port,
                            "username": "jarvis",
                            "password": "s3cret",
                            "sender": "jarvis@test",
                            # STARTTLS is the default; trust the test's own certificate.
                            "tls_ca_file": str(cert),
                        },
                    },
                }
            )
            async with running(settings, [build], clock=clock) as (client, _):
                bus = EventBus(redis, producer="test")
                await bus.publish(severity_event(incident, Severity.P0, clock.now()))
                await eventually(lambda: redis.exists(f"jarvis:escalator:timers:{incident}"))
                clock.advance(timedelta(minutes=15))
                sent = await eventually(lambda: _has(redis, incident, 4))
                health = (await client.get("/health")).json()["services"]["escalator"]
                assert health["channels"] == ["email", "pagerduty", "slack", "webhook"]

                for channel, record in sent.items():
                    assert record["delivered"] is True, channel
                    assert record["attempts"] == 1
                    assert record["level"] == 2
                    assert record["step"] == "time:900s:L2"

                (slack_body,) = slack.bodies()
                assert "level 2 (engineering manager)" in slack_body["text"]
                assert slack_body["blocks"][0]["type"] == "header"

                (hook_request,) = hook.requests
                assert hook_request["headers"]["Authorization"] == "Bearer t"
                assert hook_request["json"]["incident_id"] == incident
                assert hook_request["json"]["role"] == "engineering manager"
                assert hook_request["json"]["contacts"] == ["eng-manager@company.com"]

                (trigger,) = pagerduty.bodies()
                assert trigger["event_action"] == "trigger"
                assert trigger["dedup_key"] == incident
                assert trigger["routing_key"] == "R0UT1NG"
                assert trigger["payload"]["severity"] == "critical"
                assert trigger["payload"]["source"] == "jarvis-responder"

                (envelope,) = mail.messages
                assert envelope.rcpt_tos == ["eng-manager@company.com"]
                assert envelope.mail_from == "jarvis@test"
                message = message_from_bytes(envelope.original_content or b"")
                assert "escalation to level 2" in message["Subject"]
                assert message["X-Jarvis-Incident"] == incident
                assert AUTH_SEEN == [(b"jarvis", True)]  # the password went over TLS

                # Resolving resolves the PagerDuty alert with the same dedup_key.
                await bus.publish(IncidentResolved(incident_id=incident))
                await eventually(lambda: _async_len(pagerduty.bodies, 2))
                resolve = pagerduty.bodies()[1]
                assert resolve == {
                    "routing_key": "R0UT1NG",
                    "event_action": "resolve",
                    "dedup_key": incident,
                }
                records = await eventually(lambda: _resolve_record(redis, incident))
                assert records["delivered"] is True
                assert len(slack.requests) == len(hook.requests) == len(mail.messages) == 1


async def test_retries_with_backoff_on_5xx_and_timeouts(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    incident = _incident()
    with (
        http_receiver(statuses=[503, 500]) as hook,  # fails twice, then succeeds
        http_receiver(delays=[1.5]) as slack,  # first answer too slow: client times out
    ):
        mail = MailHandler(fail_first=1)
        async with smtp_receiver(mail) as smtp_port:
            settings = make_settings(
                escalator={
                    "routes": NO_ROUTE_MAIL,
                    "notifier": {
                        "retry": FAST_RETRY,
                        "slack": {"webhook_url": slack.url},
                        "webhook": {"url": hook.url},
                        # No password: plain SMTP may be chosen (STARTTLS is the default).
                        "email": {
                            "smtp_host": "127.0.0.1",
                            "smtp_port": smtp_port,
                            "starttls": False,
                        },
                    },
                }
            )
            async with running(settings, [build]):
                await EventBus(redis).publish(escalation_due(incident))
                sent = await eventually(lambda: _has(redis, incident, 3))
    assert sent["webhook"]["delivered"] is True
    assert sent["webhook"]["attempts"] == 3
    assert [r["status"] for r in hook.requests] == [503, 500, 200]
    assert sent["slack"]["delivered"] is True
    assert sent["slack"]["attempts"] == 2
    assert sent["email"]["delivered"] is True
    assert sent["email"]["attempts"] == 2
    assert len(mail.messages) == 1


async def test_permanent_failures_are_not_retried_and_exhausted_retries_are_recorded(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    incident = _incident()
    with http_receiver(final_status=400) as slack, http_receiver(final_status=503) as hook:
        settings = make_settings(
            escalator={
                "routes": NO_ROUTE_MAIL,
                "notifier": {
                    "retry": {**FAST_RETRY, "max_attempts": 3},
                    "slack": {"webhook_url": slack.url},
                    "webhook": {"url": hook.url},
                    # Nothing listens on port 9 of loopback: connection refused, retried.
                    "email": {"smtp_host": "127.0.0.1", "smtp_port": 9},
                },
            }
        )
        async with running(settings, [build]):
            await EventBus(redis).publish(escalation_due(incident))
            sent = await eventually(lambda: _has(redis, incident, 3))
    assert (sent["slack"]["delivered"], sent["slack"]["attempts"]) == (False, 1)
    assert "HTTP 400" in sent["slack"]["detail"]
    assert (sent["webhook"]["delivered"], sent["webhook"]["attempts"]) == (False, 3)
    assert len(hook.requests) == 3
    assert (sent["email"]["delivered"], sent["email"]["attempts"]) == (False, 3)
    assert "ConnectionRefused" in sent["email"]["detail"]


async def test_redelivered_escalation_never_notifies_twice(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    incident = _incident()
    with http_receiver() as hook:
        settings = make_settings(
            escalator={"notifier": {"retry": FAST_RETRY, "webhook": {"url": hook.url}}}
        )
        async with running(settings, [build]):
            bus = EventBus(redis)
            escalation = escalation_due(incident)
            await bus.publish(escalation)
            await eventually(lambda: _has(redis, incident, 1))
            await bus.publish(escalation)  # the same step again (a redelivery)
            await eventually(lambda: settled(redis, "jarvis:escalations", "escalator"))
            await asyncio.sleep(0.3)
    assert len(hook.requests) == 1
    # The outcome and its timeline entry are written together, once: nothing to re-publish.
    records = await notifications_of(redis, incident)
    assert len(records) == 1


async def test_delivery_of_a_replica_that_died_mid_try_is_sent_when_its_lease_runs_out(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    incident = _incident()
    escalation = escalation_due(incident)
    with http_receiver() as hook:
        # Even with one delivery allowed before dead-lettering, and a fast reclaim.
        settings = make_settings(
            consumer={"max_deliveries": 1, "reclaim_idle_ms": 200},
            escalator={"notifier": {"retry": FAST_RETRY, "webhook": {"url": hook.url}}},
        )
        # A replica read the escalation, took its delivery for a 2 s lease, and died
        # (kill -9) mid-try: the entry stays pending on it, the delivery in the outbox.
        await ensure_group(redis, ESCALATIONS.key, "escalator")
        await EventBus(redis).publish(escalation)
        await redis.xreadgroup("escalator", "dead-replica", {ESCALATIONS.key: ">"})
        notification = Notification(
            incident_id=incident,
            step=escalation.step,
            level=2,
            role="engineering manager",
            severity="P0",
            trigger="time",
            reason=escalation.reason,
            occurred_at=escalation.occurred_at,
            event_id=escalation.event_id,
        )
        pending = PendingDelivery("webhook", notification, escalation.follow(), time.time())
        key = f"jarvis:escalator:sent:{incident}:{escalation.step}:webhook"
        await Outbox(redis).enqueue(key, pending.to_json(), 2.0, "dead-replica")
        taken_at = time.monotonic()
        async with running(settings, [build]):
            await eventually(lambda: settled(redis, ESCALATIONS.key, "escalator"))
            assert hook.requests == []  # not while the dead replica's lease holds
            sent = await eventually(lambda: _has(redis, incident, 1), timeout=15)
            delivered_after = time.monotonic() - taken_at
            await asyncio.sleep(0.5)
    assert sent["webhook"]["delivered"] is True
    assert len(hook.requests) == 1
    assert 2.0 <= delivered_after < 2.0 + 5.0
    assert await redis.xlen(DEAD_LETTER) == 0


async def test_level_without_any_configured_channel_is_recorded_as_undelivered(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    incident = _incident()
    async with running(make_settings(), [build]):
        await EventBus(redis).publish(escalation_due(incident, level=5))
        sent = await eventually(lambda: _has(redis, incident, 1))
    assert sent["none"]["delivered"] is False
    assert "no configured channel for level 5" in sent["none"]["detail"]


async def _records(redis: Redis, incident: str) -> list[dict[str, Any]]:
    return await notifications_of(redis, incident)


async def _has(redis: Redis, incident: str, n: int) -> dict[str, dict[str, Any]] | None:
    sent = await _delivered(redis, incident)
    return sent if len(sent) >= n else None


async def _resolve_record(redis: Redis, incident: str) -> dict[str, Any] | None:
    for record in await notifications_of(redis, incident):
        if record["step"] == "resolve":
            return record
    return None


async def _async_len(get: Callable[[], Any], n: int) -> bool:
    value = get()
    if asyncio.iscoroutine(value):
        value = await value
    return len(value) == n


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_the_smtp_password_never_goes_out_in_clear(
    redis: Redis, make_settings: Callable[..., Settings]
) -> None:
    """Issue 18, finding 8: by default the SMTP password was sent without TLS."""
    incident = _incident()
    mail = MailHandler()
    AUTH_SEEN.clear()
    email = {"smtp_host": "127.0.0.1", "username": "jarvis", "password": "s3cret"}
    async with smtp_receiver(mail, auth=True) as smtp_port:  # no STARTTLS offered
        email["smtp_port"] = smtp_port
        with pytest.raises(ConfigError, match="allow_plaintext_auth"):
            make_settings(escalator={"notifier": {"email": {**email, "starttls": False}}})
        settings = make_settings(
            escalator={"routes": NO_ROUTE_MAIL, "notifier": {"retry": FAST_RETRY, "email": email}}
        )
        async with running(settings, [build]):
            await EventBus(redis).publish(escalation_due(incident))
            sent = await eventually(lambda: _has(redis, incident, 1))
    assert sent["email"]["delivered"] is False
    assert sent["email"]["attempts"] == 1  # not worth retrying: the server cannot do TLS
    assert "STARTTLS" in sent["email"]["detail"] or "starttls" in sent["email"]["detail"]
    assert AUTH_SEEN == []
    assert mail.messages == []
