"""The Notifier port and its real adapters: Slack incoming webhook, generic JSON webhook,
e-mail over SMTP, PagerDuty Events API v2 — plus when to try again.

An adapter makes one attempt and raises `DeliveryError` (transient or not, with the
receiver's `Retry-After` when it gave one); `attempt` makes one bounded try and reports
it; `retry_wait` decides when a transient failure (5xx, 429, timeouts, connection
errors, SMTP 4xx) is tried again — capped, jittered exponential backoff, never sooner
than Retry-After — or that the deadline has passed. The schedule itself is durable, in
Redis (outbox.py). Only configured channels are built.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from services.escalator.messages import (
    Notification,
    email_message,
    pagerduty_event,
    slack_payload,
    webhook_payload,
)
from shared.retry import backoff_delay
from shared.settings import (
    EmailNotifierSettings,
    NotifierSettings,
    PagerDutyNotifierSettings,
    RetrySettings,
)

__all__ = [
    "Attempt",
    "DeliveryError",
    "DeliveryResult",
    "EmailNotifier",
    "Notifier",
    "PagerDutyNotifier",
    "SlackNotifier",
    "WebhookNotifier",
    "attempt",
    "build_notifiers",
    "retry_after_seconds",
    "retry_wait",
]


class DeliveryError(Exception):
    """One attempt failed; `transient` says whether trying again may help, `retry_after_s`
    how long the receiver asked us to wait (its Retry-After), if it said."""

    def __init__(
        self, message: str, *, transient: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.retry_after_s = retry_after_s


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


@dataclass(frozen=True)
class Attempt:
    """The outcome of one try."""

    delivered: bool
    detail: str
    transient: bool = False
    retry_after_s: float | None = None


async def attempt(notifier: Notifier, notification: Notification, timeout_s: float) -> Attempt:
    """One try, never longer than `timeout_s` (a receiver that hangs is a transient failure)."""
    try:
        async with asyncio.timeout(timeout_s):
            answer = await notifier.send(notification)
    except DeliveryError as exc:
        return Attempt(False, str(exc)[:2000], exc.transient, exc.retry_after_s)
    except TimeoutError:
        return Attempt(False, f"timed out after {timeout_s:g}s", transient=True)
    return Attempt(True, answer[:2000])


def retry_wait(
    *, attempts: int, waited_s: float, retry: RetrySettings, retry_after_s: float | None
) -> float | None:
    """How long to wait before trying again after `attempts` tries that failed transiently,
    `waited_s` after the first; None when it is time to give up: `max_attempts` reached,
    or the next try would come after `deadline_s`. Retry-After is honoured, never shortened."""
    if retry.max_attempts and attempts >= retry.max_attempts:
        return None
    wait = max(
        backoff_delay(attempts, retry.backoff_initial_s, retry.backoff_max_s), retry_after_s or 0.0
    )
    return wait if waited_s + wait <= retry.deadline_s else None


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """An HTTP Retry-After header (seconds, or an HTTP date) in seconds from now."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


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
        wait = retry_after_seconds(response.headers.get("retry-after"))
        raise DeliveryError(answer, transient=transient, retry_after_s=wait)


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
