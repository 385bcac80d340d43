"""Routes by severity and audience (runbook "Communication Protocols"): which of the
configured routes hear a piece of an incident's news, and the notifiers that reach them.

A route with a Slack webhook becomes the channel `slack:<route>`, one with recipients the
channel `email:<route>`; they are delivered like every other channel (once per step and
channel, with retries), and each delivery is a NotificationSent on the timeline.
"""

from __future__ import annotations

from dataclasses import replace

import httpx

from services.escalator.messages import Notification
from services.escalator.notifiers import EmailNotifier, Notifier, SlackNotifier
from shared.settings import NotifierSettings, RoutesSettings

__all__ = ["build_route_notifiers", "route_channels"]


def route_channels(routes: RoutesSettings, kind: str, severity: str, level: int = 1) -> list[str]:
    """The route channels that hear `kind` news of a `severity` incident (escalations: of
    `level`), whether or not they are configured to send."""
    out: list[str] = []
    for name, route in routes.by_name().items():
        if kind not in (route.events or ()) or severity not in (route.severities or ()):
            continue
        if kind == "escalated" and level < (route.min_level or 1):
            continue
        out.append(f"slack:{name}")
        out.append(f"email:{name}")
    return out


class _RouteEmail:
    """E-mail to a route's own recipients, whoever the news would otherwise reach."""

    channel = "email"

    def __init__(self, inner: EmailNotifier, recipients: list[str]) -> None:
        self._inner = inner
        self._recipients = tuple(recipients)

    async def send(self, notification: Notification) -> str:
        return await self._inner.send(replace(notification, contacts=self._recipients))


def build_route_notifiers(
    routes: RoutesSettings, settings: NotifierSettings, client: httpx.AsyncClient
) -> dict[str, Notifier]:
    """Notifiers of the routes that can send: a webhook URL, or recipients and SMTP."""
    timeout = settings.retry.timeout_s
    notifiers: dict[str, Notifier] = {}
    for name, route in routes.by_name().items():
        if route.slack_webhook_url:
            notifiers[f"slack:{name}"] = SlackNotifier(client, route.slack_webhook_url, timeout)
        if route.emails and settings.email.smtp_host:
            notifiers[f"email:{name}"] = _RouteEmail(
                EmailNotifier(settings.email, timeout), route.emails
            )
    return notifiers
