"""On-call and communications settings of the escalator's section: rotations (schedules),
the people directory, the runbook's roles filled from schedules, and the routes that carry
an incident's messages by severity and audience (runbook "Communication Protocols")."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

__all__ = [
    "MessageKind",
    "PersonSettings",
    "RoleScheduleSettings",
    "RoleSchedulesSettings",
    "RouteSettings",
    "RoutesSettings",
    "ScheduleSettings",
    "SeverityName",
    "SlackInteractivitySettings",
    "rotation_hours",
]

SeverityName = Literal["P0", "P1", "P2", "P3"]
MessageKind = Literal[
    "opened",
    "severity_changed",
    "escalated",
    "resolved",
    "role_assigned",
    "approval_requested",
    "remediation",
]
_ROTATION = re.compile(r"^(daily|weekly|(\d{1,3})h)$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$"


def rotation_hours(rotation: str) -> int | None:
    """N for an `<N>h` rotation; None for daily and weekly (handed off on the wall clock)."""
    match = _ROTATION.match(rotation)
    return int(match.group(2)) if match and match.group(2) else None


class ScheduleSettings(BaseModel):
    """One rotation: members take turns, each for one period, from `start` at `handoff`."""

    members: list[str] = Field(
        min_length=1,
        description="Who takes turns, in order: names from escalator.people or e-mail addresses.",
    )
    rotation: str = Field(
        default="weekly",
        description="daily, weekly, or every N hours as `<N>h` (e.g. 12h).",
    )
    handoff: time = Field(
        default=time(9, 0), description="Local time of the handoff (of the first, for <N>h)."
    )
    time_zone: str = Field(default="UTC", description="IANA time zone of `handoff`.")
    start: date = Field(
        default=date(2026, 1, 5),
        description="The first member's first shift begins on this date at `handoff`; weekly "
        "rotations hand off on its weekday. Nobody is on call before it.",
    )

    @field_validator("rotation")
    @classmethod
    def _rotation(cls, value: str) -> str:
        value = value.strip().lower()
        match = _ROTATION.match(value)
        if not match:
            raise ValueError(f"{value!r}: expected daily, weekly or <N>h (e.g. 12h)")
        hours = rotation_hours(value)
        if hours is not None and not 1 <= hours <= 24 * 28:
            raise ValueError(f"{value!r}: N must be between 1 and 672 hours")
        return value

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r}: not an IANA time zone (e.g. Europe/Berlin)") from exc
        return value

    @field_validator("members")
    @classmethod
    def _members(cls, value: list[str]) -> list[str]:
        for member in value:
            if not re.match(_NAME, member):
                raise ValueError(f"{member!r}: a person's name or an e-mail address")
        return value


class PersonSettings(BaseModel):
    """Where one person is reached (PagerDuty stays the level's, unchanged)."""

    email: str | None = Field(default=None, description="E-mail address.")
    slack_user_id: str | None = Field(
        default=None,
        pattern=r"^[UW][A-Z0-9]{2,20}$",
        description="Slack member id (U…): mentioned in Slack messages, and allowed to click.",
    )


class RoleScheduleSettings(BaseModel):
    """A runbook role filled from schedules when an incident opens (runbook "Response Team
    Roles": a primary and a backup)."""

    primary: str | None = Field(default=None, description="Schedule whose on-call takes it.")
    backup: str | None = Field(
        default=None, description="Schedule used when the primary has nobody on call."
    )


class RoleSchedulesSettings(BaseModel):
    incident_commander: RoleScheduleSettings = Field(default_factory=RoleScheduleSettings)
    technical_lead: RoleScheduleSettings = Field(default_factory=RoleScheduleSettings)
    operations_lead: RoleScheduleSettings = Field(default_factory=RoleScheduleSettings)
    communications_lead: RoleScheduleSettings = Field(default_factory=RoleScheduleSettings)

    def filled(self) -> dict[str, RoleScheduleSettings]:
        """The roles that name a schedule."""
        return {
            name: role
            for name, role in (
                ("incident_commander", self.incident_commander),
                ("technical_lead", self.technical_lead),
                ("operations_lead", self.operations_lead),
                ("communications_lead", self.communications_lead),
            )
            if role.primary or role.backup
        }


class RouteSettings(BaseModel):
    """Where one audience is told, and what. Unset fields take the runbook's defaults."""

    slack_channel: str | None = Field(default=None, description="Slack channel it posts to.")
    slack_webhook_url: str | None = Field(
        default=None, description="Incoming webhook of that channel; unset: no Slack for it."
    )
    emails: list[str] | None = Field(default=None, description="E-mail recipients.")
    severities: list[SeverityName] | None = Field(
        default=None, description="Severities of the incidents it hears about."
    )
    events: list[MessageKind] | None = Field(default=None, description="What it is told.")
    min_level: int | None = Field(
        default=None, ge=1, le=5, description="Escalations: the lowest level it is told of."
    )


_INCIDENT_NEWS: list[MessageKind] = [
    "opened",
    "severity_changed",
    "escalated",
    "resolved",
    "role_assigned",
    "approval_requested",
]
# Runbook "Communication Protocols": Slack channels and e-mail lists.
_ROUTE_DEFAULTS: dict[str, RouteSettings] = {
    "critical": RouteSettings(
        slack_channel="#incidents-critical",
        emails=["incident-response@company.com"],
        severities=["P0", "P1"],
        events=_INCIDENT_NEWS,
        min_level=1,
    ),
    "general": RouteSettings(
        slack_channel="#incidents-general",
        emails=["incident-response@company.com"],
        severities=["P2", "P3"],
        events=_INCIDENT_NEWS,
        min_level=1,
    ),
    "ops": RouteSettings(
        slack_channel="#jarvis-ops",
        emails=[],
        severities=["P0", "P1", "P2", "P3"],
        events=["remediation"],
        min_level=1,
    ),
    "engineering": RouteSettings(
        slack_channel="",
        emails=["engineering@company.com"],
        severities=["P0", "P1"],
        events=["opened", "resolved"],
        min_level=1,
    ),
    "management": RouteSettings(
        slack_channel="",
        emails=["management@company.com"],
        severities=["P0"],
        events=["opened", "escalated", "resolved"],
        min_level=4,
    ),
}


class RoutesSettings(BaseModel):
    """The runbook's channels and lists; each names its Slack webhook and recipients."""

    critical: RouteSettings = Field(default_factory=RouteSettings)
    general: RouteSettings = Field(default_factory=RouteSettings)
    ops: RouteSettings = Field(default_factory=RouteSettings)
    engineering: RouteSettings = Field(default_factory=RouteSettings)
    management: RouteSettings = Field(default_factory=RouteSettings)

    @model_validator(mode="after")
    def _runbook_defaults(self) -> RoutesSettings:
        for name, default in _ROUTE_DEFAULTS.items():
            given: RouteSettings = getattr(self, name)
            filled = default.model_copy(
                update={k: v for k, v in given.model_dump().items() if v is not None}
            )
            object.__setattr__(self, name, filled)
        return self

    def by_name(self) -> dict[str, RouteSettings]:
        return {name: getattr(self, name) for name in _ROUTE_DEFAULTS}


class SlackInteractivitySettings(BaseModel):
    """Buttons in Slack messages (Acknowledge, Approve, Refuse) and who may click them."""

    signing_secret: SecretStr | None = Field(
        default=None,
        description="The Slack app's signing secret; unset: /webhooks/slack/interactions is off.",
    )
    people_only: bool = Field(
        default=True,
        description="Only people of escalator.people with a slack_user_id may click.",
    )
    max_age_s: int = Field(
        default=300, ge=30, le=900, description="Oldest request timestamp accepted (replays)."
    )
