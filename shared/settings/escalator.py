"""The escalator's section: the escalation matrix, levels and contacts, notifiers."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    model_validator,
)
from pydantic_settings import NoDecode

from shared.settings.oncall import (
    PersonSettings,
    RoleSchedulesSettings,
    RoutesSettings,
    ScheduleSettings,
    SlackInteractivitySettings,
)

__all__ = [
    "EmailNotifierSettings",
    "EscalationCell",
    "EscalationLevelSettings",
    "EscalationLevelsSettings",
    "EscalationMatrixSettings",
    "EscalatorSettings",
    "MatrixRow",
    "NotifierChannel",
    "NotifierSettings",
    "PagerDutyNotifierSettings",
    "RemediationOutcome",
    "RetrySettings",
    "SlackNotifierSettings",
    "WebhookNotifierSettings",
]


NotifierChannel = Literal["slack", "webhook", "email", "pagerduty"]
RemediationOutcome = Literal["failed", "timed_out", "rejected"]
_DEFAULT_REMEDIATION_OUTCOMES: tuple[RemediationOutcome, ...] = ("failed", "timed_out")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_LEVEL_WORDS = {"monitor": None, "executive": 5}


class EscalationCell(BaseModel):
    """One cell of the escalation matrix: after `after_s` seconds open, escalate to `level`."""

    after_s: float = Field(gt=0, description="Seconds since the incident opened.")
    level: int | None = Field(
        ge=1, le=5, description="1 on-call … 4 VP engineering, 5 executive; null: monitor only."
    )


def _parse_row(value: Any) -> Any:
    """Accept the compact form `"15m=2, 1h=3, 4h=4, 24h=executive"` (handy in env vars)."""
    if not isinstance(value, str):
        return value
    if value.lstrip().startswith("["):
        return json.loads(value)
    cells: list[dict[str, Any]] = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        after, sep, level = part.partition("=")
        match = _DURATION.match(after)
        if not sep or not match:
            raise ValueError(f"{part!r}: expected <duration>=<level>, e.g. 15m=2 or 24h=executive")
        word = level.strip().lower()
        cells.append(
            {
                "after_s": float(match.group(1)) * _UNIT_S[match.group(2)],
                "level": _LEVEL_WORDS.get(word, word),
            }
        )
    return cells


def _row(text: str) -> list[EscalationCell]:
    return [EscalationCell.model_validate(cell) for cell in _parse_row(text)]


MatrixRow = Annotated[list[EscalationCell], NoDecode, BeforeValidator(_parse_row)]


class EscalationMatrixSettings(BaseModel):
    """Runbook "Escalation Matrix" (CONTRACT §3), one row per severity; P3 has no time steps."""

    p0: MatrixRow = Field(default_factory=lambda: _row("15m=2, 1h=3, 4h=4, 24h=executive"))
    p1: MatrixRow = Field(default_factory=lambda: _row("15m=1, 1h=2, 4h=3, 24h=4"))
    p2: MatrixRow = Field(default_factory=lambda: _row("15m=monitor, 1h=1, 4h=2, 24h=3"))
    p3: MatrixRow = Field(default_factory=list)

    @model_validator(mode="after")
    def _ascending(self) -> EscalationMatrixSettings:
        for name in ("p0", "p1", "p2", "p3"):
            row: list[EscalationCell] = getattr(self, name)
            afters = [cell.after_s for cell in row]
            if afters != sorted(set(afters)):
                raise ValueError(f"{name}: thresholds must be strictly ascending")
        return self


class EscalationLevelSettings(BaseModel):
    """Who a level reaches and over which channels. Unset fields take the runbook's defaults."""

    role: str | None = Field(default=None, description="Runbook role of the level.")
    contacts: list[str] | None = Field(
        default=None, description="E-mail addresses of the level (also listed in the event)."
    )
    channels: list[NotifierChannel] | None = Field(
        default=None, description="Channels used for this level (only configured ones send)."
    )


# Runbook "Escalation Contacts"; executive from "Emergency Contact Information" / "Email Lists".
_LEVEL_DEFAULTS: dict[str, tuple[str, str]] = {
    "level_1": ("on-call engineer", "on-call@company.com"),
    "level_2": ("engineering manager", "eng-manager@company.com"),
    "level_3": ("technical director", "tech-director@company.com"),
    "level_4": ("VP engineering", "vp-eng@company.com"),
    "executive": ("executive", "management@company.com"),
}
_ALL_CHANNELS: list[NotifierChannel] = ["slack", "webhook", "email", "pagerduty"]


class EscalationLevelsSettings(BaseModel):
    level_1: EscalationLevelSettings = Field(default_factory=EscalationLevelSettings)
    level_2: EscalationLevelSettings = Field(default_factory=EscalationLevelSettings)
    level_3: EscalationLevelSettings = Field(default_factory=EscalationLevelSettings)
    level_4: EscalationLevelSettings = Field(default_factory=EscalationLevelSettings)
    executive: EscalationLevelSettings = Field(default_factory=EscalationLevelSettings)

    @model_validator(mode="after")
    def _runbook_defaults(self) -> EscalationLevelsSettings:
        for name, (role, contact) in _LEVEL_DEFAULTS.items():
            level: EscalationLevelSettings = getattr(self, name)
            filled = EscalationLevelSettings(
                role=level.role or role,
                contacts=[contact] if level.contacts is None else level.contacts,
                channels=list(_ALL_CHANNELS) if level.channels is None else level.channels,
            )
            object.__setattr__(self, name, filled)
        return self

    def by_number(self) -> dict[int, EscalationLevelSettings]:
        """Levels 1–5 (5 is the executive level)."""
        return {
            1: self.level_1,
            2: self.level_2,
            3: self.level_3,
            4: self.level_4,
            5: self.executive,
        }


class RetrySettings(BaseModel):
    """How a notification is retried: transient failures (5xx, 408, 429, timeouts,
    connection errors, SMTP 4xx) again and again, honouring Retry-After, until `deadline_s`
    after the first try; the retries are scheduled in Redis, so other pages keep flowing
    and a restart loses none."""

    timeout_s: float = Field(default=5.0, gt=0, le=120, description="Timeout of one delivery try.")
    deadline_s: float = Field(
        default=3600.0,
        gt=0,
        description="How long after its first try a notification is retried before it is "
        "recorded as failed (NotificationSent delivered=false).",
    )
    max_attempts: int = Field(
        default=0, ge=0, description="Tries per notification; 0: as many as fit in deadline_s."
    )
    backoff_initial_s: float = Field(default=0.5, ge=0, description="First wait between tries.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest wait between tries.")


class SlackNotifierSettings(BaseModel):
    webhook_url: str | None = Field(default=None, description="Slack incoming-webhook URL.")


class WebhookNotifierSettings(BaseModel):
    url: str | None = Field(default=None, description="Generic JSON webhook URL.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")


class EmailNotifierSettings(BaseModel):
    smtp_host: str | None = Field(default=None, description="SMTP server; unset: e-mail off.")
    smtp_port: int = Field(default=25, ge=1, le=65535, description="SMTP port.")
    username: str | None = Field(default=None, description="SMTP AUTH user.")
    password: str | None = Field(default=None, description="SMTP AUTH password.")
    starttls: bool = Field(
        default=True,
        description="Upgrade the connection with STARTTLS; a server that offers none is "
        "refused, never used without TLS.",
    )
    ssl: bool = Field(default=False, description="Implicit TLS (SMTPS, usually port 465).")
    tls_ca_file: str | None = Field(
        default=None,
        description="CA certificates the SMTP server's must chain to; unset: the system's.",
    )
    allow_plaintext_auth: bool = Field(
        default=False,
        description="Allow sending username and password with starttls and ssl off (in clear).",
    )
    sender: str = Field(default="jarvis-responder@localhost", description="From address.")

    @model_validator(mode="after")
    def _no_password_in_clear(self) -> EmailNotifierSettings:
        if self.username and not (self.ssl or self.starttls) and not self.allow_plaintext_auth:
            raise ValueError(
                "username: SMTP AUTH without TLS would send the password in clear; keep "
                "starttls (or ssl) on, or set allow_plaintext_auth"
            )
        return self


class PagerDutyNotifierSettings(BaseModel):
    routing_key: str | None = Field(
        default=None, description="Events API v2 integration key; unset: PagerDuty off."
    )
    events_url: str = Field(
        default="https://events.pagerduty.com/v2/enqueue", description="Events API v2 endpoint."
    )
    source: str = Field(default="jarvis-responder", description="payload.source of events.")


class NotifierSettings(BaseModel):
    retry: RetrySettings = Field(default_factory=RetrySettings)
    slack: SlackNotifierSettings = Field(default_factory=SlackNotifierSettings)
    webhook: WebhookNotifierSettings = Field(default_factory=WebhookNotifierSettings)
    email: EmailNotifierSettings = Field(default_factory=EmailNotifierSettings)
    pagerduty: PagerDutyNotifierSettings = Field(default_factory=PagerDutyNotifierSettings)


class EscalatorSettings(BaseModel):
    """The escalation policy (snapshotted per incident when it opens) and the notifiers."""

    tick_s: float = Field(default=1.0, gt=0, description="How often due escalations are fired.")
    matrix: EscalationMatrixSettings = Field(default_factory=EscalationMatrixSettings)
    levels: EscalationLevelsSettings = Field(default_factory=EscalationLevelsSettings)
    ack_extra_levels: int = Field(
        default=0,
        ge=0,
        le=4,
        description="Levels past the acknowledged one that time-based escalation may still "
        "reach after an ack (0: an ack stops time-based escalation).",
    )
    multiple_systems_threshold: int = Field(
        default=2, ge=2, description="Services failing in one incident that escalate at once."
    )
    multiple_systems_level: int = Field(default=2, ge=1, le=5, description="Level it reaches.")
    data_loss_level: int = Field(default=3, ge=1, le=5, description="Level data loss reaches.")
    security_level: int = Field(default=3, ge=1, le=5, description="Level a breach reaches.")
    remediation_failed_level: int = Field(
        default=2, ge=1, le=5, description="Level a failed remediation reaches."
    )
    remediation_outcomes: list[RemediationOutcome] = Field(
        default_factory=lambda: list(_DEFAULT_REMEDIATION_OUTCOMES),
        description="ActionCompleted outcomes that escalate at once (escalate=true always does).",
    )
    notifier: NotifierSettings = Field(default_factory=NotifierSettings)
    schedules: dict[str, ScheduleSettings] = Field(
        default_factory=dict,
        description="On-call rotations by name; a level contact `schedule:<name>` names one.",
    )
    people: dict[str, PersonSettings] = Field(
        default_factory=dict, description="The people directory: how each person is reached."
    )
    roles: RoleSchedulesSettings = Field(
        default_factory=RoleSchedulesSettings,
        description="Runbook roles (IC, TL, OL, CL) filled from schedules when an incident opens.",
    )
    routes: RoutesSettings = Field(
        default_factory=RoutesSettings,
        description="Where an incident's news goes, by severity and audience (runbook defaults).",
    )
    slack_interactivity: SlackInteractivitySettings = Field(
        default_factory=SlackInteractivitySettings
    )
    ics_days: int = Field(
        default=56, ge=1, le=366, description="How far ahead a schedule's iCalendar feed reaches."
    )

    @model_validator(mode="after")
    def _references(self) -> EscalatorSettings:
        """Names that must exist: a clear error at start, naming the setting."""
        problems: list[str] = []
        for number, level in self.levels.by_number().items():
            setting = "executive" if number == 5 else f"level_{number}"
            for contact in level.contacts or ():
                name = contact.removeprefix("schedule:")
                if contact.startswith("schedule:") and name not in self.schedules:
                    problems.append(
                        f"escalator.levels.{setting}.contacts: schedule {name!r} is not defined "
                        f"in escalator.schedules (defined: {sorted(self.schedules) or 'none'})"
                    )
        for name, schedule in self.schedules.items():
            for member in schedule.members:
                if "@" not in member and member not in self.people:
                    problems.append(
                        f"escalator.schedules.{name}.members: {member!r} is neither in "
                        "escalator.people nor an e-mail address"
                    )
        for role, fill in self.roles.filled().items():
            for which in ("primary", "backup"):
                name = getattr(fill, which)
                if name and name not in self.schedules:
                    problems.append(
                        f"escalator.roles.{role}.{which}: schedule {name!r} is not defined"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self
