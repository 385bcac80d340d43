"""Delivering escalations: each EscalationDue goes to its level's channels, once.

Per (incident, step, channel) a Redis key is claimed with SET NX and a lease before
sending, and replaced by the recorded `NotificationSent` afterwards. A redelivered
EscalationDue (crash, reclaim, second replica) therefore never notifies twice: a finished
delivery is only re-published (same event id), and one in flight elsewhere is left to its
owner — if that owner dies, its lease runs out and the redelivery sends it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from prometheus_client import Counter
from redis.asyncio import Redis

from services.escalator.messages import Notification
from services.escalator.notifiers import DeliveryResult, Notifier, deliver
from services.escalator.oncall import OnCallResolver
from services.escalator.policy import Policy
from services.escalator.routing import route_channels
from services.escalator.store import EscalatorStore
from shared.bus import EventBus, as_text
from shared.clock import Clock
from shared.events import EscalationDue, Event, NotificationSent, scrub
from shared.settings import RetrySettings, RoutesSettings

__all__ = ["Dispatcher", "InFlightElsewhere"]

log = logging.getLogger(__name__)

_NS = uuid.UUID("3c1d6a52-8e4f-4b7a-9f20-6a5b4c3d2e1f")
_DONE_TTL_S = 30 * 24 * 3600

NOTIFICATIONS = Counter(
    "jarvis_escalator_notifications_total",
    "Notifications attempted by the escalator, by channel and result.",
    ["channel", "result"],
)


class InFlightElsewhere(RuntimeError):
    """Another consumer is delivering this notification; retry after its lease."""


class Dispatcher:
    def __init__(
        self,
        *,
        redis: Redis,
        bus: EventBus,
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
        self._bus = bus
        self._store = store
        self._notifiers = notifiers
        self._retry = retry
        self._clock = clock
        self._instance = instance
        self._current_policy = current_policy
        self._routes = routes
        self._oncall = oncall
        worst = retry.max_attempts * (retry.timeout_s + retry.backoff_max_s)
        self._lease_ms = int((worst + 30) * 1000)

    @property
    def channels(self) -> list[str]:
        return sorted(self._notifiers)

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

    async def _once(self, notification: Notification, channel: str, cause: Event) -> None:
        key = self._key(notification, channel)
        owner = f"sending:{self._instance}"
        claimed = await self._redis.set(key, owner, nx=True, px=self._lease_ms)
        if not claimed:
            recorded = await self._redis.get(key)
            if recorded is not None and as_text(recorded).startswith("{"):
                # Delivered (or given up) before: publish the same record again, in case
                # the first publish was lost; the recorder keeps one per event id.
                await self._bus.publish(NotificationSent.model_validate_json(recorded))
                return
            raise InFlightElsewhere(f"{channel} delivery of {notification.step} is in flight")
        result = await deliver(self._notifiers[channel], notification, self._retry)
        NOTIFICATIONS.labels(channel, "delivered" if result.delivered else "failed").inc()
        if result.delivered and channel == "pagerduty" and notification.action == "trigger":
            pipe = self._redis.pipeline(transaction=False)
            pipe.sadd(_paged_key(notification.incident_id), notification.step)
            pipe.expire(_paged_key(notification.incident_id), _DONE_TTL_S)
            await pipe.execute()
        await self._record(key, notification, channel, result, cause)

    async def _record_once(
        self, notification: Notification, channel: str, result: DeliveryResult, cause: Event
    ) -> None:
        key = self._key(notification, channel)
        if await self._redis.set(key, "recording", nx=True, px=self._lease_ms):
            await self._record(key, notification, channel, result, cause)
        else:
            recorded = await self._redis.get(key)
            if recorded is not None and as_text(recorded).startswith("{"):
                await self._bus.publish(NotificationSent.model_validate_json(recorded))

    async def _record(
        self,
        key: str,
        notification: Notification,
        channel: str,
        result: DeliveryResult,
        cause: Event,
    ) -> None:
        sent = NotificationSent(
            event_id=str(uuid.uuid5(_NS, key)),
            producer="escalator",
            occurred_at=self._clock.now(),
            **cause.follow(incident_id=notification.incident_id),
            channel=channel,
            level=notification.level,
            step=notification.step,
            delivered=result.delivered,
            attempts=result.attempts,
            detail=scrub(result.detail),  # a receiver's answer: no NUL into an event
        )
        await self._redis.set(key, sent.to_json(), ex=_DONE_TTL_S)
        await self._bus.publish(sent)
        if not result.delivered:
            log.warning("%s notification %s failed: %r", channel, key, result.detail)


def _paged_key(incident_id: str) -> str:
    return f"jarvis:escalator:paged:{incident_id}"
