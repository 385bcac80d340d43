"""Stream keys and consumer-group names of CONTRACT §2, and which events each stream carries."""

from __future__ import annotations

from dataclasses import dataclass

from shared.events import (
    ActionApproved,
    ActionCompleted,
    ActionRefused,
    ActionRequested,
    AlertCorrelated,
    AlertRaised,
    AlertSilenced,
    DrillStarted,
    EscalationDue,
    Event,
    IncidentAcknowledged,
    IncidentResolved,
    NoteAdded,
    NotificationSent,
    RoleAssigned,
    ScheduleOverrideAdded,
    ScheduleOverrideRemoved,
    SeverityAssigned,
    SilenceCreated,
    SilenceExpired,
    StatusUpdatePosted,
)

__all__ = [
    "ACTIONS_COMPLETED",
    "ACTIONS_REQUESTED",
    "ALERTS",
    "ALL_STREAMS",
    "DEAD_LETTER",
    "ESCALATIONS",
    "INCIDENTS",
    "SEVERITY",
    "StreamSpec",
    "stream_for",
]


@dataclass(frozen=True)
class StreamSpec:
    """A stream key and the event types it carries (the first is the default on ingest)."""

    key: str
    events: tuple[type[Event], ...]


ALERTS = StreamSpec("jarvis:alerts", (AlertRaised,))
SEVERITY = StreamSpec("jarvis:severity", (SeverityAssigned,))
ACTIONS_REQUESTED = StreamSpec("jarvis:actions:requested", (ActionRequested,))
ACTIONS_COMPLETED = StreamSpec("jarvis:actions:completed", (ActionCompleted,))
ESCALATIONS = StreamSpec("jarvis:escalations", (EscalationDue,))
INCIDENTS = StreamSpec(
    "jarvis:incidents",
    (
        IncidentAcknowledged,
        IncidentResolved,
        NoteAdded,
        RoleAssigned,
        ActionApproved,
        AlertCorrelated,
        NotificationSent,
        ActionRefused,
        SilenceCreated,
        SilenceExpired,
        AlertSilenced,
        ScheduleOverrideAdded,
        ScheduleOverrideRemoved,
        StatusUpdatePosted,
        DrillStarted,
    ),
)
DEAD_LETTER = "jarvis:dead-letter"

ALL_STREAMS: tuple[StreamSpec, ...] = (
    ALERTS,
    SEVERITY,
    ACTIONS_REQUESTED,
    ACTIONS_COMPLETED,
    ESCALATIONS,
    INCIDENTS,
)

_BY_TYPE = {cls: spec for spec in ALL_STREAMS for cls in spec.events}


def stream_for(event: Event) -> StreamSpec:
    """The stream an event is published on."""
    return _BY_TYPE[type(event)]


def stream_of(cls: type[Event]) -> StreamSpec:
    """The stream events of type `cls` are published on."""
    return _BY_TYPE[cls]
