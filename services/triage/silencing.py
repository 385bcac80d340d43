"""Triage applies silences: a new alert a silence covers opens no incident.

A firing alert whose fingerprint has no open incident, and that a silence in force matches,
is recorded — AlertSilenced ("silenced by <id>", once per fingerprint and window) — and
remembered in `jarvis:triage:silenced` (hash fingerprint → the alert, the silence, the
window). It opens no incident, so no playbook starts and the escalator pages nobody.
An alert of an incident that is already open is not silenced: it joins its incident.

When the window ends (or the silence is expired early) while the alert still fires — no
`resolved` came for it meanwhile — the alert is treated as new at that moment: a background
loop puts a copy (a new event id, the current time) back on `jarvis:alerts`, where it opens
an incident unless another silence covers it. Neither triage nor the sender needs to wait
for the alert to be sent again. Across replicas the copy is published once: the entry is
removed and the copy added in one script, only if the entry is still the one read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from redis.asyncio import Redis

from services.triage.outbox import GROUP, derived_id
from services.triage.store import Batch, Keys, Version
from shared.bus import DATA_FIELD, SEAL_FIELD, as_text
from shared.events import AlertRaised, AlertSilenced
from shared.silence_store import SilenceWatch
from shared.silences import SilenceIndex, Window, alert_labels
from shared.streams import ALERTS

__all__ = ["SILENCED", "Silenced", "Silencing"]

SILENCED = Keys.PREFIX + "silenced"

# KEYS: silenced hash, alerts stream. ARGV: fingerprint, entry as read, alert JSON, its seal
# (the envelope is the detector's, as stamped: shared.envelope).
_RELEASE = f"""
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], '*', '{DATA_FIELD}', ARGV[3], '{SEAL_FIELD}', ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Silenced:
    """A silenced alert as remembered until its window ends."""

    silence_id: str
    window: Window
    alert: AlertRaised

    def to_json(self) -> str:
        return json.dumps(
            {
                "silence_id": self.silence_id,
                "window": [self.window[0].isoformat(), self.window[1].isoformat()],
                "alert": self.alert.model_dump(mode="json"),
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Silenced:
        data = json.loads(raw)
        start, end = (datetime.fromisoformat(t) for t in data["window"])
        return cls(data["silence_id"], (start, end), AlertRaised.model_validate(data["alert"]))


class Silencing:
    """The silences as triage applies them (see the module's docstring)."""

    def __init__(self, redis: Redis, seal: Callable[[str], str]) -> None:
        self._redis = redis
        # An alert put back keeps the envelope the detector gave it: sealed again, or every
        # reader would take it for another system's claim (and namespace its fingerprint).
        self._seal = seal
        self._watch = SilenceWatch(redis)
        self._release = redis.register_script(_RELEASE)

    async def index(self, version: bytes | str | None) -> SilenceIndex:
        """The silences at `version` (`SILENCES_VERSION`, read with the alerts' state)."""
        return await self._watch.index(version)

    async def remembered(self, fingerprints: Sequence[str]) -> dict[str, Silenced]:
        """The silenced alerts remembered for `fingerprints` (one round trip)."""
        unique = sorted(set(fingerprints))
        if not unique:
            return {}
        values = await self._redis.hmget(SILENCED, unique)
        return {fp: Silenced.from_json(v) for fp, v in zip(unique, values, strict=True) if v}

    @staticmethod
    def silence(
        batch: Batch,
        alert: AlertRaised,
        service: str,
        found: tuple[str, Window],
        known: Silenced | None,
    ) -> Silenced:
        """Record a new alert a silence covers, instead of opening an incident; returns
        what is remembered of it."""
        silence_id, window = found
        batch.stamp(Version.fingerprint(alert.fingerprint))
        batch.mark_done(alert.event_id, f"silenced:{silence_id}")
        if known is not None and (known.silence_id, known.window) == found:
            return known  # said already for this window: a repeat costs nothing more
        entry = Silenced(silence_id, window, alert.model_copy(update={"service": service}))
        batch.hset(SILENCED, alert.fingerprint, entry.to_json())
        batch.publish(
            AlertSilenced(
                event_id=derived_id(
                    alert.fingerprint, "silenced", silence_id, window[0].isoformat()
                ),
                producer=GROUP,
                causation_id=alert.event_id,
                silence_id=silence_id,
                fingerprint=alert.fingerprint,
                service=service,
                check=alert.check,
                summary=alert.summary,
                window_ends_at=window[1],
            )
        )
        return entry

    @staticmethod
    def recovered(batch: Batch, alert: AlertRaised, known: Silenced | None) -> None:
        """A silenced alert resolved: nothing to bring back when the window ends."""
        if known is not None:
            batch.stamp(Version.fingerprint(alert.fingerprint))
            batch.hdel(SILENCED, alert.fingerprint)

    async def release_due(self, now: datetime) -> int:
        """Put back on `jarvis:alerts` the silenced alerts no silence covers any more;
        returns how many this call put back."""
        index = await self._watch.index()
        released = 0
        for fingerprint, raw in (await self._redis.hgetall(SILENCED)).items():
            entry = Silenced.from_json(raw)
            alert = entry.alert
            if index.silencing(alert_labels(alert.service, alert.check, alert.labels), now):
                continue
            again = alert.model_copy(
                update={
                    "event_id": derived_id(
                        alert.event_id, "unsilenced", entry.window[1].isoformat()
                    ),
                    "occurred_at": now,
                    "incident_id": None,
                    "correlation_id": None,
                    "causation_id": None,
                }
            )
            data = again.to_json()
            args: list[str | int] = [
                as_text(fingerprint),
                as_text(raw),
                data,
                self._seal(data),
            ]
            released += int(await self._release(keys=[SILENCED, ALERTS.key], args=args))
        return released
