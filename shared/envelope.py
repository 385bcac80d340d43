"""The envelope of alerts from outside: the server owns it; what a sender says is a claim.

An alert comes from outside through the detector's HTTP ingest (an integration identified
by its token) or straight onto `jarvis:alerts` with XADD (integration `stream`). Either way:

* `event_id` is the server's: a sender's id is only an idempotency key within its own
  integration (uuid5 of integration + id), so it can never equal, and erase, another
  integration's or a service's event (those are UUIDv7, `shared.ids`, or uuid5 in other
  namespaces);
* `fingerprint` is prefixed with `ext:<integration>:`, so a sender can only resolve (or
  join, or acknowledge) the alerts it raised itself;
* `incident_id`, `correlation_id`, `causation_id` are cleared, `producer`, `source` and
  `integration` are set: triage decides the incident, not the sender;
* `occurred_at` is the server's time; the sender's claim is kept as `starts_at` (firing)
  or `ends_at` (resolved) when those are not given.

The detector seals each alert it stamped (HMAC of the entry's JSON with `envelope_key`,
in the entry's `__seal__` field). Every consumer of `jarvis:alerts` runs `AlertAdmission`:
a sealed entry is taken as it is, any other gets the envelope of integration `stream`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.bus import DATA_FIELD, SEAL_FIELD
from shared.events import AlertRaised, AlertSource, AlertStatus, Event
from shared.ids import new_event_id, uuid5_text
from shared.keys import Signer

__all__ = [
    "STREAM",
    "AlertAdmission",
    "own",
    "own_claim",
    "owned_event_id",
    "owned_fingerprint",
    "pagerduty_integration",
]

STREAM = "stream"  # the integration of entries written to jarvis:alerts directly
_NS = uuid.UUID("6f1e2b8c-4d0a-4b7e-9c31-52a8d0e7f913")
# Fields no sender sets: dropped from a claim before it is read.
_SERVER_OWNED = frozenset(
    {
        "event_id",
        "event_type",
        "occurred_at",
        "producer",
        "source",
        "incident_id",
        "correlation_id",
        "causation_id",
        "integration",
    }
)


def owned_event_id(integration: str, claimed: str | None) -> str:
    """The stored id of an alert: a fresh one, or the sender's id within its integration."""
    if not claimed:
        return new_event_id()
    return uuid5_text(_NS, f"{integration}\n{claimed}")


def owned_fingerprint(integration: str, fingerprint: str) -> str:
    """`ext:<integration>:<fingerprint>`, hashed when it would not fit in 256 characters."""
    owned = f"ext:{integration}:{fingerprint}"
    if len(owned) <= 256:
        return owned
    return f"ext:{integration}:sha256:{hashlib.sha256(fingerprint.encode()).hexdigest()}"


def pagerduty_integration(routing_key: str) -> str:
    """PagerDuty senders cannot send a token; their routing key names them instead."""
    return f"pagerduty-{hashlib.sha256(routing_key.encode()).hexdigest()[:12]}"


class _Claim(BaseModel):
    """What is read from a sender's server-owned fields: an idempotency key, a time."""

    model_config = ConfigDict(extra="ignore")

    event_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    occurred_at: datetime | None = None


_NOTHING_CLAIMED = _Claim()


def own_claim(
    claim: Mapping[str, Any], *, integration: str, source: AlertSource, now: datetime
) -> AlertRaised:
    """An AlertRaised from a sender's JSON object, with the server's envelope.

    Raises pydantic's ValidationError naming the bad fields.
    """
    # Most senders claim neither: nothing to read then (the same as validating no fields).
    claims = "event_id" in claim or "occurred_at" in claim  # (the fields of _Claim)
    said = _Claim.model_validate(claim) if claims else _NOTHING_CLAIMED
    data = {k: v for k, v in claim.items() if k not in _SERVER_OWNED}
    if said.occurred_at is not None:
        resolved = data.get("status") == AlertStatus.RESOLVED.value
        data.setdefault("ends_at" if resolved else "starts_at", said.occurred_at)
    # The owned id goes in at once: no throw-away default id minted, and `own` keeps it.
    event_id = owned_event_id(integration, said.event_id)
    alert = AlertRaised.model_validate(
        {
            **data,
            "source": source.value,
            "producer": "detector",
            "occurred_at": now,
            "event_id": event_id,
        }
    )
    # What `own` would copy in, set on this alert instead: no one else has seen it yet, and
    # the envelope fields `own` clears were never read from the claim (_SERVER_OWNED).
    owned = {
        "fingerprint": owned_fingerprint(integration, alert.fingerprint),
        "integration": integration,
    }
    alert.__dict__.update(owned)
    alert.__pydantic_fields_set__.update(owned)
    return alert


def own(
    alert: AlertRaised,
    *,
    integration: str,
    claimed_id: str | None = None,
    event_id: str | None = None,
    **envelope: Any,
) -> AlertRaised:
    """`alert` with the server's id (`event_id` when already owned), fingerprint and
    integration, and no incident."""
    return alert.model_copy(
        update={
            "event_id": event_id or owned_event_id(integration, claimed_id),
            "fingerprint": owned_fingerprint(integration, alert.fingerprint),
            "integration": integration,
            "incident_id": None,
            "correlation_id": None,
            "causation_id": None,
            **envelope,
        }
    )


def _entry_time(entry_id: str) -> datetime:
    """When Redis appended the entry: its id starts with Redis' clock in milliseconds."""
    millis = int(entry_id.split("-", 1)[0])
    return datetime.fromtimestamp(millis / 1000, UTC)


class AlertAdmission:
    """Run by every consumer of `jarvis:alerts` on each decoded entry."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def seal(self, data: str) -> str:
        """The seal the detector writes beside an alert it stamped."""
        return self._signer.sign("jarvis-ir alert seal v1", data)

    def sealed(self, fields: Mapping[bytes, bytes]) -> bool:
        data = fields.get(DATA_FIELD.encode())
        seal = fields.get(SEAL_FIELD.encode())
        if data is None or seal is None:
            return False
        return self._signer.verify(seal.decode("ascii", "replace"), "jarvis-ir alert seal v1", data)

    def __call__(self, event: Event, fields: Mapping[bytes, bytes], entry_id: str) -> Event:
        if not isinstance(event, AlertRaised) or self.sealed(fields):
            return event
        claimed_at = event.occurred_at
        times: dict[str, Any] = {}
        if event.status is AlertStatus.RESOLVED:
            times["ends_at"] = event.ends_at or claimed_at
        else:
            times["starts_at"] = event.starts_at or claimed_at
        return own(
            event,
            integration=STREAM,
            claimed_id=event.event_id,
            source=AlertSource.STREAM,
            producer=STREAM,
            occurred_at=_entry_time(entry_id),
            **times,
        )
