"""An incident as a value: its services, severity and status, and its JSON form.

Stored in Redis by `store.py`; changed only by the pure decisions of `grouping.py`.

The latest word of each fingerprint (an `AlertSlot`) is stored beside the incident, one
hash field per fingerprint, not inside it: an incident that gathers thousands of alerts
stays a small document, and an alert reads and writes only its own slot. What decisions
need of all slots is kept as running aggregates: how many fingerprints fire per service,
how many there are, and the most severe slot ever seen (slots' severities only rise).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

import pydantic_core

from services.triage.memo import Memo
from shared.events import Level, Severity

__all__ = ["AlertSlot", "Incident", "Status"]


class Status(StrEnum):
    OPEN = "open"  # at least one alert firing
    QUIET = "quiet"  # every alert resolved; resolves when the quiet period has passed
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertSlot:
    """The latest word of one fingerprint in an incident."""

    service: str
    firing: bool
    severity: Severity
    impact: Level
    urgency: Level
    reason: str
    at: datetime  # when the alert that last changed `firing` happened (orders replicas' work)

    def as_dict(self) -> dict[str, Any]:
        # Written for every alert: spelled out, as dataclasses.asdict deep-copies.
        return {
            "service": self.service,
            "firing": self.firing,
            "severity": self.severity.value,
            "impact": self.impact.value,
            "urgency": self.urgency.value,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }

    def to_json(self) -> str:
        return pydantic_core.to_json(self.as_dict()).decode()

    @classmethod
    def from_json(cls, raw: str | bytes) -> AlertSlot:
        # Every repeat of a firing alert reads its fingerprint's slot: mostly the same bytes.
        return _SLOTS(raw)

    @classmethod
    def _parse(cls, raw: bytes) -> AlertSlot:
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, s: Mapping[str, Any]) -> AlertSlot:
        return cls(
            service=s["service"],
            firing=s["firing"],
            severity=Severity(s["severity"]),
            impact=Level(s["impact"]),
            urgency=Level(s["urgency"]),
            reason=s["reason"],
            at=datetime.fromisoformat(s["at"]),
        )


@dataclass(frozen=True)
class Incident:
    id: str
    opened_at: datetime
    status: Status
    severity: Severity
    impact: Level
    urgency: Level
    reason: str
    title: str
    root_cause: str
    services: tuple[str, ...]
    worst: AlertSlot  # the most severe slot of any fingerprint, firing or not
    firing: Mapping[str, int] = field(default_factory=dict)  # service → firing fingerprints
    alert_count: int = 1  # fingerprints that ever joined
    quiet_since: datetime | None = None
    data_loss: bool = False
    security: bool = False
    playbook: str | None = None
    drill_id: str | None = None  # a drill's incident (a fault injected on purpose)
    resolved_by: str | None = None

    @property
    def failing(self) -> tuple[str, ...]:
        """Services with a firing alert, in the order they joined."""
        return tuple(s for s in self.services if self.firing.get(s, 0) > 0)

    def to_json(self) -> str:
        data: dict[str, Any] = {name: getattr(self, name) for name in _FIELDS}
        data["opened_at"] = self.opened_at.isoformat()
        data["quiet_since"] = self.quiet_since.isoformat() if self.quiet_since else None
        data["worst"] = self.worst.as_dict()
        raw = pydantic_core.to_json(data)
        # What triage writes it reads back with its next batch: known already.
        _INCIDENTS.remember(raw, self)
        return raw.decode()

    @classmethod
    def from_json(cls, raw: str | bytes) -> Incident:
        # Every alert of an incident reads it, and new fingerprints of a service read its
        # open incidents; an Incident is immutable, so the parsed value is kept by its bytes
        # (and so is every incident this process wrote: it reads them back next).
        return _INCIDENTS(raw)

    @classmethod
    def _parse(cls, raw: bytes) -> Incident:
        data = json.loads(raw)
        return cls(
            id=data["id"],
            opened_at=datetime.fromisoformat(data["opened_at"]),
            status=Status(data["status"]),
            severity=Severity(data["severity"]),
            impact=Level(data["impact"]),
            urgency=Level(data["urgency"]),
            reason=data["reason"],
            title=data["title"],
            root_cause=data["root_cause"],
            services=tuple(data["services"]),
            worst=AlertSlot.from_dict(data["worst"]),
            firing=data["firing"],
            alert_count=data["alert_count"],
            quiet_since=datetime.fromisoformat(data["quiet_since"])
            if data.get("quiet_since")
            else None,
            data_loss=data.get("data_loss", False),
            security=data.get("security", False),
            playbook=data.get("playbook"),
            drill_id=data.get("drill_id"),
            resolved_by=data.get("resolved_by"),
        )


_FIELDS = tuple(f.name for f in fields(Incident) if f.name != "worst")  # JSON's order
_SLOTS: Memo[AlertSlot] = Memo(AlertSlot._parse)
_INCIDENTS: Memo[Incident] = Memo(Incident._parse)
