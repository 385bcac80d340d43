"""Delivering escalations: each EscalationDue goes to its level's channels, once.

Each (incident, step, channel) is a delivery in the durable outbox (outbox.py). The
handler adds it, holding it for one try's lease, and tries at once; a transient failure
puts it back in the outbox for later (backoff, Retry-After), so the consumer moves on to
other pages, and every replica's retry loop tries due deliveries again until the
deadline (`notifier.retry.deadline_s`, 1 h by default). Waits and leases are real time
(Redis' clock); the deadline is measured on the runtime clock, like the escalation
matrix, so tests can drive it. A replica that dies mid-try
leaves the delivery to come due when its lease ends (2 × timeout_s + 5 s): another
replica sends it then. A redelivered EscalationDue finds its delivery known and adds
nothing. The outcome — delivered, refused, or given up at the deadline — is one
`NotificationSent` on the timeline, written in the same script that makes it final.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import replace

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis

from services.escalator.messages import Notification
from services.escalator.notifiers import DeliveryResult, Notifier, attempt, retry_wait
from services.escalator.oncall import OnCallResolver
from services.escalator.outbox import Enqueued, Outbox, PendingDelivery
from services.escalator.policy import Policy
from services.escalator.routing import route_channels
from services.escalator.store import EscalatorStore
from shared.clock import Clock
from shared.events import EscalationDue, Event, NotificationSent, scrub
from shared.settings import RetrySettings, RoutesSettings

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)

_NS = uuid.UUID("3c1d6a52-8e4f-4b7a-9f20-6a5b4c3d2e1f")
_DONE_TTL_S = 30 * 24 * 3600
_RETRY_BATCH = 50

NOTIFICATIONS = Counter(
    "jarvis_escalator_notifications_total",
    "Notification tries of the escalator, by channel and result: delivered, failed (final: "
    "refused, or still failing at the deadline), retry (a transient failure, tried again).",
    ["channel", "result"],
)
WAITING = Gauge(
    "jarvis_escalator_notifications_waiting",
    "Notifications in the outbox: waiting for a retry or being tried.",
)


class Dispatcher:
    def __init__(
        self,
        *,
        redis: Redis,
        store: EscalatorStore,
        notifiers: dict[str, Notifier],
        retry: RetrySettings,
        clock: Clock,
        instance: str,
        current_policy: Policy,
        routes: RoutesSettings | None = None,
        oncall: OnCallResolver | None = None,
    ) -> None:
        self._redis = redis
        self._store = store
        self._notifiers = notifiers
        self._retry = retry
        self._clock = clock
        self._token = f"{instance}:{uuid.uuid4().hex[:8]}"
        self._current_policy = current_policy
        self._routes = routes
        self._oncall = oncall
        self._outbox = Outbox(redis)
        # One try is bounded by try_s; the lease outlasts it, so a live replica keeps its
        # delivery, and a dead one's comes due again within lease_s.
        self._try_s = retry.timeout_s * 2
        self.lease_s = self._try_s + 5.0

    @property
    def channels(self) -> list[str]:
        return sorted(self._notifiers)

    async def waiting(self) -> int:
        """Notifications in the outbox (waiting for a retry, or being tried)."""
        return await self._outbox.waiting()

    async def on_escalation(self, event: EscalationDue) -> None:
        """Send one escalation over every configured channel of its level."""
        if not event.incident_id:
            raise ValueError("incident_id: an EscalationDue needs an incident")
        state = await self._store.state(event.incident_id)
        policy = (
            Policy.model_validate_json(state.policy_json)
            if state.policy_json
            else self._current_policy
        )
        level = policy.level(event.level)
        notification = Notification(
            incident_id=event.incident_id,
            step=event.step,
            level=event.level,
            role=level.role,
            severity=event.severity.value,
            trigger=event.trigger.value,
            reason=event.reason,
            occurred_at=event.occurred_at,
            event_id=event.event_id,
            # Events before on-call resolution list no addresses: the level's fixed ones then
            # (a `schedule:<name>` is no address to send to).
            contacts=tuple(
                event.contacts or [c for c in level.contacts if not c.startswith("schedule:")]
            ),
            title=state.title,
            service=state.service,
            elapsed_s=event.elapsed_s,
            people=tuple(event.on_call.values()),
            mentions=self._oncall.slack_ids(event.on_call.values()) if self._oncall else (),
            buttons=("ack",),
        )
        # The level's own channels reach its people; routes tell the audiences that hear
        # of escalations of this severity (runbook "Communication Protocols").
        channels = [c for c in level.channels if c in self._notifiers]
        channels += self._routed(notification)
        if not channels:
            # Nobody can be told: say so on the timeline instead of failing silently.
            await self._record_once(
                notification,
                "none",
                DeliveryResult(False, 1, f"no configured channel for level {event.level}"),
                event,
            )
            return
        await self._all(notification, channels, event)

    def _routed(self, notification: Notification) -> list[str]:
        if self._routes is None:
            return []
        wanted = route_channels(
            self._routes, notification.kind, notification.severity, notification.level
        )
        return [c for c in wanted if c in self._notifiers]

    async def announce(self, notification: Notification, cause: Event) -> None:
        """Tell the routes that hear this kind of news; nothing when none is configured."""
        channels = self._routed(notification)
        if channels:
            await self._all(notification, channels, cause)

    async def on_resolved(self, event: Event, level: int) -> None:
        """Resolve the incident's PagerDuty alert, if it was ever triggered."""
        incident_id = event.incident_id
        if not incident_id or "pagerduty" not in self._notifiers:
            return
        if not await self._redis.scard(_paged_key(incident_id)):
            return
        notification = Notification(
            incident_id=incident_id,
            step="resolve",
            level=max(level, 1),
            role="",
            severity="",
            trigger="resolved",
            reason="incident resolved",
            occurred_at=event.occurred_at,
            event_id=event.event_id,
            action="resolve",
        )
        await self._all(notification, ["pagerduty"], event)

    async def _all(self, notification: Notification, channels: list[str], cause: Event) -> None:
        results = await asyncio.gather(
            *(self._once(notification, channel, cause) for channel in channels),
            return_exceptions=True,
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    def _key(self, notification: Notification, channel: str) -> str:
        return f"jarvis:escalator:sent:{notification.incident_id}:{notification.step}:{channel}"

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def _once(self, notification: Notification, channel: str, cause: Event) -> None:
        """Add the delivery to the outbox and try it now, unless it is known already (a
        redelivery): then it is final, or the outbox will try it."""
        key = self._key(notification, channel)
        pending = PendingDelivery(channel, notification, cause.follow(), first_at=self._now())
        state = await self._outbox.enqueue(key, pending.to_json(), self.lease_s, self._token)
        if state is Enqueued.HELD:
            await self._try(key, pending)

    async def retry_forever(self, interval_s: float) -> None:
        """The retry loop every replica runs (a background loop of the service)."""
        while True:
            if not await self.retry_due():
                await asyncio.sleep(interval_s)

    async def retry_due(self) -> int:
        """Try the deliveries whose retry is due (also those a dead replica held); returns
        how many were tried. Called by every replica's retry loop."""
        due = await self._outbox.take_due(self.lease_s, self._token, _RETRY_BATCH)
        await asyncio.gather(*(self._try(key, PendingDelivery.from_json(raw)) for key, raw in due))
        WAITING.set(await self._outbox.waiting())
        return len(due)

    async def _try(self, key: str, pending: PendingDelivery) -> None:
        """One try; then final, or back in the outbox for the next."""
        channel = pending.channel
        notifier = self._notifiers.get(channel)
        if notifier is None:  # the channel was configured away meanwhile
            result = DeliveryResult(False, pending.attempts, f"channel {channel} not configured")
            await self._finish(key, pending, result)
            return
        outcome = await attempt(notifier, pending.notification, self._try_s)
        attempts = pending.attempts + 1
        if outcome.delivered or not outcome.transient:
            await self._finish(
                key, pending, DeliveryResult(outcome.delivered, attempts, outcome.detail)
            )
            return
        waited = self._now() - pending.first_at
        wait = retry_wait(
            attempts=attempts,
            waited_s=waited,
            retry=self._retry,
            retry_after_s=outcome.retry_after_s,
        )
        if wait is None:
            detail = f"gave up after {attempts} tries in {waited:.0f} s: {outcome.detail}"
            await self._finish(key, pending, DeliveryResult(False, attempts, detail[:2000]))
            return
        NOTIFICATIONS.labels(channel, "retry").inc()
        later = replace(pending, attempts=attempts, detail=outcome.detail)
        await self._outbox.reschedule(key, wait, later.to_json(), self._token)

    async def _record_once(
        self, notification: Notification, channel: str, result: DeliveryResult, cause: Event
    ) -> None:
        pending = PendingDelivery(channel, notification, cause.follow(), first_at=self._now())
        await self._finish(self._key(notification, channel), pending, result)

    async def _finish(self, key: str, pending: PendingDelivery, result: DeliveryResult) -> None:
        """Record the outcome once: the NotificationSent and its timeline entry together."""
        notification = pending.notification
        channel = pending.channel
        if result.delivered and channel == "pagerduty" and notification.action == "trigger":
            pipe = self._redis.pipeline(transaction=False)
            pipe.sadd(_paged_key(notification.incident_id), notification.step)
            pipe.expire(_paged_key(notification.incident_id), _DONE_TTL_S)
            await pipe.execute()
        sent = NotificationSent(
            event_id=str(uuid.uuid5(_NS, key)),
            producer="escalator",
            occurred_at=self._clock.now(),
            **{**pending.follow, "incident_id": notification.incident_id},
            channel=channel,
            level=notification.level,
            step=notification.step,
            delivered=result.delivered,
            attempts=max(result.attempts, 1),
            detail=scrub(result.detail),  # a receiver's answer: no NUL into an event
        )
        if not await self._outbox.finish(key, sent.to_json()):
            return  # recorded before (a redelivery, or a replica that overran its lease)
        NOTIFICATIONS.labels(channel, "delivered" if result.delivered else "failed").inc()
        if not result.delivered:
            log.warning("%s notification %s failed: %r", channel, key, result.detail)


def _paged_key(incident_id: str) -> str:
    return f"jarvis:escalator:paged:{incident_id}"
