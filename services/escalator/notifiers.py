"""The Notifier port and its real adapters: Slack incoming webhook, generic JSON webhook,
e-mail over SMTP, PagerDuty Events API v2 — plus retries with backoff.

An adapter makes one attempt and raises `DeliveryError` (transient or not); `deliver`
retries transient failures (5xx, 429, timeouts, connection errors, SMTP 4xx) with
exponential backoff and reports the outcome. Only configured channels are built.
"""

from __future__ import annotations

import asyncio
import random
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from services.escalator.messages import (
    Notification,
    email_message,
    pagerduty_event,
    slack_payload,
    webhook_payload,
)
from shared.settings import (
    EmailNotifierSettings,
    NotifierSettings,
    PagerDutyNotifierSettings,
    RetrySettings,
)

__all__ = [
    "DeliveryError",
    "DeliveryResult",
    "EmailNotifier",
    "Notifier",
    "PagerDutyNotifier",
    "SlackNotifier",
    "WebhookNotifier",
    "build_notifiers",
    "deliver",
]


class DeliveryError(Exception):
    """One attempt failed; `transient` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class Notifier(Protocol):
    channel: str

    async def send(self, notification: Notification) -> str:
        """Deliver once; return the receiver's answer. Raise DeliveryError on failure."""
        ...


@dataclass(frozen=True)
class DeliveryResult:
    delivered: bool
    attempts: int
    detail: str


async def deliver(
    notifier: Notifier,
    notification: Notification,
    retry: RetrySettings,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> DeliveryResult:
    """Send with retries: transient failures back off exponentially (with a little jitter)."""
    delay = retry.backoff_initial_s
    for attempt in range(1, retry.max_attempts + 1):
        try:
            answer = await notifier.send(notification)
        except DeliveryError as exc:
            if not exc.transient or attempt == retry.max_attempts:
                return DeliveryResult(False, attempt, str(exc)[:2000])
            await sleep(min(delay, retry.backoff_max_s) * random.uniform(1.0, 1.1))
            delay *= 2
            continue
        return DeliveryResult(True, attempt, answer[:2000])
    raise AssertionError("unreachable: max_attempts >= 1")  # pragma: no cover


class _HttpNotifier:
    """POST a JSON body; 2xx is success, 5xx/429/timeouts are worth retrying."""

    channel = "http"

    def __init__(self, client: httpx.AsyncClient, url: str, timeout_s: float) -> None:
        self._client = client
        self._url = url
        self._timeout_s = timeout_s
        self._headers: dict[str, str] = {}

    def body(self, notification: Notification) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, notification: Notification) -> str:
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.post(
                    self._url,
                    json=self.body(notification),
                    headers=self._headers,
                    timeout=self._timeout_s,
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise DeliveryError(f"timed out after {self._timeout_s}s", transient=True) from exc
        except httpx.TransportError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", transient=True) from exc
        answer = f"HTTP {response.status_code} {response.text[:500]}".strip()
        if response.is_success:
            return answer
        transient = response.status_code >= 500 or response.status_code in (408, 429)
        raise DeliveryError(answer, transient=transient)


class SlackNotifier(_HttpNotifier):
    channel = "slack"

    def body(self, notification: Notification) -> dict[str, Any]:
        return slack_payload(notification)


class WebhookNotifier(_HttpNotifier):
    channel = "webhook"

    def __init__(
        self, client: httpx.AsyncClient, url: str, timeout_s: float, headers: dict[str, str]
    ) -> None:
        super().__init__(client, url, timeout_s)
        self._headers = dict(headers)

    def body(self, notification: Notification) -> dict[str, Any]:
        return webhook_payload(notification)


class PagerDutyNotifier(_HttpNotifier):
    channel = "pagerduty"

    def __init__(
        self, client: httpx.AsyncClient, settings: PagerDutyNotifierSettings, timeout_s: float
    ) -> None:
        super().__init__(client, settings.events_url, timeout_s)
        self._routing_key = settings.routing_key or ""
        self._source = settings.source

    def body(self, notification: Notification) -> dict[str, Any]:
        return pagerduty_event(notification, self._routing_key, self._source)


class EmailNotifier:
    """SMTP through the standard library, in a worker thread (one connection per mail)."""

    channel = "email"

    def __init__(self, settings: EmailNotifierSettings, timeout_s: float) -> None:
        self._settings = settings
        self._timeout_s = timeout_s

    async def send(self, notification: Notification) -> str:
        if not notification.contacts:
            raise DeliveryError("no e-mail contacts for this level", transient=False)
        return await asyncio.to_thread(self._send_sync, notification)

    def _send_sync(self, notification: Notification) -> str:
        s = self._settings
        host = s.smtp_host or "localhost"
        message = email_message(notification, s.sender)
        smtp: smtplib.SMTP
        context = ssl.create_default_context(cafile=s.tls_ca_file)
        try:
            if s.ssl:
                smtp = smtplib.SMTP_SSL(host, s.smtp_port, timeout=self._timeout_s, context=context)
            else:
                smtp = smtplib.SMTP(host, s.smtp_port, timeout=self._timeout_s)
            with smtp:
                if s.starttls and not s.ssl:
                    # Raises when the server offers no STARTTLS: never falls back to clear.
                    smtp.starttls(context=context)
                if s.username:
                    smtp.login(s.username, s.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPNotSupportedError as exc:
            detail = f"SMTP server {host}:{s.smtp_port}: {exc} (TLS is required: starttls, ssl)"
            raise DeliveryError(detail, transient=False) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            transient = all(400 <= code < 500 for code in codes)
            detail = f"recipients refused: {exc.recipients}"
            raise DeliveryError(detail, transient=transient) from exc
        except smtplib.SMTPResponseException as exc:
            transient = 400 <= exc.smtp_code < 500
            error = exc.smtp_error
            text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            raise DeliveryError(f"SMTP {exc.smtp_code} {text}", transient=transient) from exc
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, refused
            raise DeliveryError(f"{type(exc).__name__}: {exc}", transient=True) from exc
        accepted = len(notification.contacts) - len(refused)
        detail = f"SMTP accepted for {accepted} recipient(s)"
        return detail + (f"; refused {sorted(refused)}" if refused else "")


def build_notifiers(settings: NotifierSettings, client: httpx.AsyncClient) -> dict[str, Notifier]:
    """The configured channels only; a channel without its URL, host or key stays off."""
    timeout = settings.retry.timeout_s
    notifiers: dict[str, Notifier] = {}
    if settings.slack.webhook_url:
        notifiers["slack"] = SlackNotifier(client, settings.slack.webhook_url, timeout)
    if settings.webhook.url:
        notifiers["webhook"] = WebhookNotifier(
            client, settings.webhook.url, timeout, settings.webhook.headers
        )
    if settings.email.smtp_host:
        notifiers["email"] = EmailNotifier(settings.email, timeout)
    if settings.pagerduty.routing_key:
        notifiers["pagerduty"] = PagerDutyNotifier(client, settings.pagerduty, timeout)
    return notifiers
