"""The events the services exchange: one frozen pydantic model per fact, defined once.

Read top to bottom: the envelope every event carries, the enumerations, then one
class per event of CONTRACT §2. `EVENT_TYPES` maps each `event_type` to its class;
`parse_event` turns a decoded stream entry into the right model.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from json.encoder import encode_basestring_ascii as _quote  # a JSON string, as json.dumps
from typing import Any, ClassVar, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticUndefined

from shared.actions import Condition, OnFailure
from shared.ids import new_event_id
from shared.silences import Matcher, Recurrence

__all__ = [
    "EVENT_TYPES",
    "MAX_LABELS",
    "MAX_LABEL_NAME",
    "MAX_LABEL_VALUE",
    "ROLE_TITLES",
    "ActionApproved",
    "ActionCompleted",
    "ActionOutcome",
    "ActionRefused",
    "ActionRequested",
    "AlertCorrelated",
    "AlertRaised",
    "AlertSilenced",
    "AlertSource",
    "AlertStatus",
    "DrillStarted",
    "EscalationDue",
    "EscalationTrigger",
    "Event",
    "IncidentAcknowledged",
    "IncidentResolved",
    "Level",
    "NoteAdded",
    "NotificationSent",
    "RoleAssigned",
    "ScheduleOverrideAdded",
    "ScheduleOverrideRemoved",
    "Severity",
    "SeverityAssigned",
    "SilenceCreated",
    "SilenceExpired",
    "StatusUpdatePosted",
    "derive_fingerprint",
    "parse_event",
    "scrub",
    "trusted_json",
    "utcnow",
]


# No event carries a NUL (PostgreSQL cannot store one, and an event one service stored and
# another could not is a ghost); names carry no control characters at all, free text only
# tabs and line breaks (an escape sequence or a NUL would forge terminal and log output).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NO_TEXT = frozenset({bool, int, float, datetime})
_CONTAINERS = (dict, list, tuple)
MAX_LABELS = 64
MAX_LABEL_NAME = 128
MAX_LABEL_VALUE = 1024


def _nul_at(value: Any, path: str) -> str | None:
    """Where in `value` (a field's value, walked through lists and dicts) a NUL is."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_at(key, f"{path} (a key)") or _nul_at(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{path}.{index}")
            if found:
                return found
    return None


def _no_control(value: str, pattern: re.Pattern[str] = _ANY_CONTROL) -> str:
    match = pattern.search(value)
    if match:
        raise ValueError(f"control character {match.group()!r} is not accepted")
    return value


def scrub(text: str) -> str:
    """`text` without NUL characters: for text taken from elsewhere (a command's output, a
    receiver's answer) that a service puts into an event of its own."""
    return text.replace("\x00", "")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (every timestamp on the wire is UTC)."""
    return datetime.now(UTC)


def _new_id() -> str:
    return new_event_id()


class Severity(StrEnum):
    """Runbook "Severity Levels": P0 is the most severe."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @property
    def rank(self) -> int:
        """0 for P0 … 3 for P3; lower is more severe."""
        return int(self.value[1])


class Level(StrEnum):
    """Runbook "Escalation Matrix" levels (1 on-call … 4 VP, then executive)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class AlertSource(StrEnum):
    PROBE = "probe"
    ALERTMANAGER = "alertmanager"
    PAGERDUTY = "pagerduty"
    GRAFANA = "grafana"
    API = "api"
    STREAM = "stream"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class ActionOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    TIMED_OUT = "timed_out"
    AWAITING_APPROVAL = "awaiting_approval"


class EscalationTrigger(StrEnum):
    TIME = "time"
    MULTIPLE_SYSTEMS = "multiple_systems"
    DATA_LOSS = "data_loss"
    SECURITY = "security"
    REMEDIATION_FAILED = "remediation_failed"


class Event(BaseModel):
    """The envelope every event carries (CONTRACT §2). Missing fields are filled in on ingest."""

    model_config = ConfigDict(frozen=True, extra="ignore", use_enum_values=False)

    event_type: str = Field(description="The class name of the event.")
    schema_version: int = Field(default=1, ge=1, description="Version of this event's schema.")
    event_id: str = Field(default_factory=_new_id, description="Unique id (UUID) of this event.")
    occurred_at: datetime = Field(
        default_factory=utcnow, description="When the fact happened, UTC (RFC 3339)."
    )
    producer: str = Field(default="unknown", description="Name of the service that produced it.")
    incident_id: str | None = Field(
        default=None, description="The incident this event belongs to; null until triage assigns."
    )
    correlation_id: str | None = Field(
        default=None, description="The incident's trace through all events."
    )
    causation_id: str | None = Field(
        default=None, description="The event_id of the event this one reacts to."
    )

    EVENT_TYPE: ClassVar[str] = "Event"

    @model_validator(mode="before")
    @classmethod
    def _default_event_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("event_type"):
            data = {**data, "event_type": cls.EVENT_TYPE}
        return data

    @field_validator("event_type")
    @classmethod
    def _matches_class(cls, value: str) -> str:
        if cls.EVENT_TYPE != "Event" and value != cls.EVENT_TYPE:
            raise ValueError(f"expected {cls.EVENT_TYPE!r}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _no_nul(self) -> Event:
        for name, value in self.__dict__.items():
            if value is None or value.__class__ in _NO_TEXT:
                continue
            if isinstance(value, str):  # most fields: checked here, without a call
                if "\x00" not in value:
                    continue
            elif not isinstance(value, _CONTAINERS):
                continue  # a nested model: checked by its own validators
            found = _nul_at(value, name)
            if found:
                raise ValueError(f"{found}: a NUL character is not accepted")
        return self

    @field_validator("occurred_at")
    @classmethod
    def _as_utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @field_validator("event_id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        if _CANONICAL_UUID.fullmatch(value):  # as str(uuid.UUID(value)) writes it already
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError as exc:
            raise ValueError("event_id must be a UUID") from exc

    def to_json(self) -> str:
        """The wire form: the JSON stored in a stream entry's `__data__` field."""
        return self.model_dump_json()

    def follow(self, **envelope: Any) -> dict[str, Any]:
        """Envelope fields for an event that reacts to this one (causation and trace kept)."""
        base = {
            "incident_id": self.incident_id,
            "correlation_id": self.correlation_id or self.incident_id,
            "causation_id": self.event_id,
        }
        base.update(envelope)
        return base


# Per event class: its fields in order, each with its default or default factory.
_FIELDS: dict[type[Event], list[tuple[str, Any, Any]]] = {}


def trusted_json(cls: type[Event], **values: Any) -> str:
    """The wire JSON of `cls(**values)` (exactly what its `to_json` writes) for values a
    service made itself from data it has validated already: ids it derived, enums, its own
    UTC timestamps, text taken from validated events. Nothing is validated again (pydantic
    would spend more on that than on the JSON); fields not given take their defaults, as
    in the model. A name that is not a field of `cls` is refused, so none is lost."""
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = [
            (name, f.default, f.default_factory) for name, f in cls.model_fields.items()
        ]
    data: dict[str, Any] = {}
    given = 0
    for name, default, factory in fields:
        value = values.get(name, _MISSING)
        if value is not _MISSING:
            given += 1
        elif factory is not None:
            value = factory()
        elif default is PydanticUndefined:
            raise TypeError(f"{cls.__name__}: {name} is required")
        else:
            value = default
        data[name] = value
    if given != len(values):
        raise TypeError(f"{cls.__name__}: not fields: {sorted(values.keys() - data.keys())}")
    return pydantic_core.to_json(data).decode()


_MISSING = object()


def derive_fingerprint(source: str, service: str, check: str, labels: dict[str, str]) -> str:
    """A stable dedup key for an alert that brings none: source + service + check + labels.

    The sha256 of `json.dumps({...}, sort_keys=True, separators=(",", ":"))`, the text
    written here directly (keys in sorted order, each string escaped by the function the
    C encoder uses): a JSON encoder built per call cost more than the rest of the hash."""
    pairs = ",".join(f"{_quote(k)}:{_quote(v)}" for k, v in sorted(labels.items()))
    canonical = (
        f'{{"check":{_quote(check)},"labels":{{{pairs}}},'
        f'"service":{_quote(service)},"source":{_quote(source)}}}'
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class AlertRaised(Event):
    """Something looks wrong (or has recovered) in the Jarvis stack."""

    EVENT_TYPE: ClassVar[str] = "AlertRaised"
    event_type: Literal["AlertRaised"] = Field(default="AlertRaised", description="AlertRaised.")

    fingerprint: str = Field(
        default="",
        max_length=256,
        description="Dedup key; derived from source + service + check + labels when absent.",
    )
    source: AlertSource = Field(
        default=AlertSource.STREAM, description="Where the alert came from."
    )
    service: str = Field(
        min_length=1, max_length=128, description="The Jarvis component, e.g. backend."
    )
    check: str = Field(
        default="external", min_length=1, max_length=128, description="What was checked."
    )
    status: AlertStatus = Field(default=AlertStatus.FIRING, description="firing or resolved.")
    summary: str = Field(default="", max_length=1024, description="One line for humans.")
    description: str = Field(default="", max_length=16384, description="Details for humans.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")
    impact: Level | None = Field(default=None, description="Impact hint: low, medium, high.")
    urgency: Level | None = Field(default=None, description="Urgency hint: low, medium, high.")
    external_severity: str | None = Field(
        default=None, max_length=64, description="Severity as the sending system named it."
    )
    group_key: str | None = Field(
        default=None, max_length=1024, description="The sender's grouping key (Alertmanager)."
    )
    starts_at: datetime | None = Field(default=None, description="When the problem began.")
    ends_at: datetime | None = Field(default=None, description="When it ended, if resolved.")
    data_loss: bool = Field(default=False, description="Data loss is known to have happened.")
    security: bool = Field(default=False, description="A security breach is suspected.")
    integration: str | None = Field(
        default=None,
        max_length=80,
        description="Who sent it, as the server authenticated it: the name of an ingest token, "
        "`default` (JARVIS_API_TOKEN), `anonymous` (no token configured), `pagerduty-…` (a "
        "routing key) or `stream` (written to jarvis:alerts directly); null for the "
        "detector's own probes. Never taken from the sender.",
    )

    @field_validator("service", "check", "fingerprint", "external_severity", "group_key")
    @classmethod
    def _a_name(cls, value: str | None) -> str | None:
        return None if value is None else _no_control(value)

    @field_validator("summary", "description")
    @classmethod
    def _text(cls, value: str) -> str:
        return _no_control(value, _CONTROL)

    @field_validator("labels")
    @classmethod
    def _bounded_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        if len(labels) > MAX_LABELS:
            raise ValueError(f"{len(labels)} labels; at most {MAX_LABELS} are accepted")
        for name, value in labels.items():
            if not 0 < len(name) <= MAX_LABEL_NAME:
                raise ValueError(f"label name {name[:40]!r}: 1 to {MAX_LABEL_NAME} characters")
            if len(value) > MAX_LABEL_VALUE:
                raise ValueError(f"label {name!r}: value longer than {MAX_LABEL_VALUE} characters")
            _no_control(name)
            _no_control(value, _CONTROL)
        return labels

    @model_validator(mode="after")
    def _fill_fingerprint(self) -> AlertRaised:
        if not self.fingerprint:
            fp = derive_fingerprint(self.source.value, self.service, self.check, self.labels)
            object.__setattr__(self, "fingerprint", fp)
        return self


class SeverityAssigned(Event):
    """Triage classified an incident, or its severity changed."""

    EVENT_TYPE: ClassVar[str] = "SeverityAssigned"
    event_type: Literal["SeverityAssigned"] = Field(
        default="SeverityAssigned", description="SeverityAssigned."
    )

    severity: Severity = Field(description="P0 … P3.")
    previous_severity: Severity | None = Field(
        default=None, description="Severity before this change; null when the incident opens."
    )
    impact: Level = Field(description="Impact used in the matrix.")
    urgency: Level = Field(description="Urgency used in the matrix.")
    response_due_at: datetime = Field(description="opened_at + the runbook's response time.")
    opened_at: datetime = Field(description="When the incident opened.")
    reason: str = Field(description="Why this severity (rule, hint, or 'unclassified').")
    fingerprint: str = Field(description="Fingerprint of the alert that caused it.")
    service: str = Field(description="Service of the incident.")
    title: str = Field(default="", description="Short title of the incident.")
    services: list[str] = Field(default_factory=list, description="All services involved.")
    playbook: str | None = Field(default=None, description="Playbook chosen, if any.")
    data_loss: bool = Field(
        default=False, description="An alert of the incident reports data loss."
    )
    security: bool = Field(default=False, description="A security breach is suspected.")
    root_cause: str | None = Field(
        default=None, description="Probable root cause: the failing service the others depend on."
    )
    drill_id: str | None = Field(
        default=None,
        description="Set when the incident is a drill's (a fault injected on purpose).",
    )


class AlertCorrelated(Event):
    """An alert joined an incident without changing its severity."""

    EVENT_TYPE: ClassVar[str] = "AlertCorrelated"
    event_type: Literal["AlertCorrelated"] = Field(
        default="AlertCorrelated", description="AlertCorrelated."
    )

    fingerprint: str = Field(description="Fingerprint of the alert.")
    service: str = Field(description="Service of the alert.")
    status: AlertStatus = Field(description="Status of the alert.")
    reason: str = Field(default="", description="Why it joined this incident.")


class ActionRequested(Event):
    """A playbook step or an operator asks the remediator to act."""

    EVENT_TYPE: ClassVar[str] = "ActionRequested"
    event_type: Literal["ActionRequested"] = Field(
        default="ActionRequested", description="ActionRequested."
    )

    action_id: str = Field(default_factory=_new_id, description="Idempotency key of the action.")
    action: str = Field(
        min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.]*$", description="Action name."
    )
    target: str = Field(default="", max_length=256, description="What to act on (container …).")
    params: dict[str, Any] = Field(default_factory=dict, description="Action parameters.")
    requested_by: str = Field(default="triage", description="Playbook or operator.")
    playbook: str | None = Field(default=None, description="Playbook this step belongs to.")
    step: int | None = Field(default=None, ge=0, description="Index of the step in the playbook.")
    dangerous: bool = Field(default=False, description="Needs an operator's approval.")
    timeout_s: float = Field(default=120.0, gt=0, le=3600, description="Time limit of the action.")
    phase: str | None = Field(
        default=None,
        max_length=32,
        description="Playbook phase of the step: diagnostics, protect, fix, verify, followup.",
    )
    when: Condition | None = Field(
        default=None,
        description="Run only if this holds when the step would run; else skipped with why.",
    )
    on_failure: OnFailure = Field(
        default="stop",
        description="continue: a failure is noted and the playbook goes on (no escalation).",
    )


class ActionCompleted(Event):
    """The remediator's answer to an ActionRequested."""

    EVENT_TYPE: ClassVar[str] = "ActionCompleted"
    event_type: Literal["ActionCompleted"] = Field(
        default="ActionCompleted", description="ActionCompleted."
    )

    action_id: str = Field(description="The ActionRequested's action_id.")
    action: str = Field(description="Action name.")
    target: str = Field(default="", description="What was acted on.")
    outcome: ActionOutcome = Field(description="What happened.")
    dry_run: bool = Field(default=False, description="Nothing was really changed.")
    duration_ms: float = Field(default=0.0, ge=0, description="How long it took.")
    detail: str = Field(default="", description="Human-readable detail.")
    artifacts: list[str] = Field(default_factory=list, description="Files or links produced.")
    playbook: str | None = Field(default=None, description="Playbook of the step.")
    step: int | None = Field(default=None, description="Index of the step in the playbook.")
    escalate: bool = Field(
        default=False,
        description="Automatic action stopped here (attempt limit, ineffective fix): escalate.",
    )
    on_failure: OnFailure = Field(
        default="stop",
        description="The request's on_failure: a failure of a 'continue' step does not escalate.",
    )


class EscalationDue(Event):
    """An incident must be escalated to a level now."""

    EVENT_TYPE: ClassVar[str] = "EscalationDue"
    event_type: Literal["EscalationDue"] = Field(
        default="EscalationDue", description="EscalationDue."
    )

    level: int = Field(ge=1, le=5, description="1 on-call … 4 VP engineering, 5 executive.")
    severity: Severity = Field(description="Severity of the incident.")
    trigger: EscalationTrigger = Field(description="Time, or an automatic trigger.")
    reason: str = Field(description="Why now.")
    step: str = Field(description="Stable id of the escalation step (dedup key).")
    elapsed_s: float = Field(default=0.0, ge=0, description="Seconds since the incident opened.")
    contacts: list[str] = Field(default_factory=list, description="Who is notified.")
    on_call: dict[str, str] = Field(
        default_factory=dict,
        description="Schedule → the person on call it resolved to when the step fired "
        "(the level's `schedule:<name>` contacts).",
    )


class IncidentAcknowledged(Event):
    """An operator took the incident."""

    EVENT_TYPE: ClassVar[str] = "IncidentAcknowledged"
    event_type: Literal["IncidentAcknowledged"] = Field(
        default="IncidentAcknowledged", description="IncidentAcknowledged."
    )

    by: str = Field(default="operator", max_length=128, description="Who acknowledged.")


class IncidentResolved(Event):
    """The incident is over."""

    EVENT_TYPE: ClassVar[str] = "IncidentResolved"
    event_type: Literal["IncidentResolved"] = Field(
        default="IncidentResolved", description="IncidentResolved."
    )

    by: str = Field(default="operator", max_length=128, description="Who resolved (or triage).")
    note: str = Field(default="", max_length=16384, description="Resolution note.")
    automatic: bool = Field(default=False, description="Resolved by triage after a quiet period.")


class NoteAdded(Event):
    """An operator wrote on the timeline."""

    EVENT_TYPE: ClassVar[str] = "NoteAdded"
    event_type: Literal["NoteAdded"] = Field(default="NoteAdded", description="NoteAdded.")

    author: str = Field(default="operator", max_length=128, description="Who wrote it.")
    text: str = Field(min_length=1, max_length=16384, description="The note.")


#: The runbook's response roles ("Response Team Roles") and their titles.
ROLE_TITLES = {
    "incident_commander": "Incident Commander",
    "technical_lead": "Technical Lead",
    "operations_lead": "Operations Lead",
    "communications_lead": "Communications Lead",
}


class RoleAssigned(Event):
    """A runbook role (IC, TL, OL, CL) was given to a person."""

    EVENT_TYPE: ClassVar[str] = "RoleAssigned"
    event_type: Literal["RoleAssigned"] = Field(default="RoleAssigned", description="RoleAssigned.")

    role: Literal[
        "incident_commander", "technical_lead", "operations_lead", "communications_lead"
    ] = Field(description="The runbook role.")
    person: str = Field(min_length=1, max_length=128, description="Who holds it.")


class ActionApproved(Event):
    """An operator approved an action that waits for approval."""

    EVENT_TYPE: ClassVar[str] = "ActionApproved"
    event_type: Literal["ActionApproved"] = Field(
        default="ActionApproved", description="ActionApproved."
    )

    action_id: str = Field(description="The action approved.")
    approver: str = Field(default="operator", max_length=128, description="Who approved.")
    signature: str | None = Field(
        default=None,
        max_length=128,
        description="HMAC-SHA256 of action_id, approver and occurred_at with the approval key "
        "(recorder API); the remediator runs nothing on an approval without a valid one.",
    )


class ActionRefused(Event):
    """An operator refused an action that waits for approval: it is not run."""

    EVENT_TYPE: ClassVar[str] = "ActionRefused"
    event_type: Literal["ActionRefused"] = Field(
        default="ActionRefused", description="ActionRefused."
    )

    action_id: str = Field(description="The action refused.")
    by: str = Field(default="operator", max_length=128, description="Who refused.")
    reason: str = Field(default="", max_length=2000, description="Why, if they said.")


class ScheduleOverrideAdded(Event):
    """Someone takes an on-call schedule for a while ("I take Saturday for Bob")."""

    EVENT_TYPE: ClassVar[str] = "ScheduleOverrideAdded"
    event_type: Literal["ScheduleOverrideAdded"] = Field(
        default="ScheduleOverrideAdded", description="ScheduleOverrideAdded."
    )

    schedule: str = Field(max_length=128, description="The schedule (escalator.schedules).")
    override_id: str = Field(max_length=64, description="Id of the override.")
    person: str = Field(max_length=128, description="Who is on call during it.")
    starts_at: datetime = Field(description="When it begins (UTC).")
    ends_at: datetime = Field(description="When it ends (UTC).")
    by: str = Field(default="operator", max_length=128, description="Who set it.")


class ScheduleOverrideRemoved(Event):
    """An on-call override was deleted."""

    EVENT_TYPE: ClassVar[str] = "ScheduleOverrideRemoved"
    event_type: Literal["ScheduleOverrideRemoved"] = Field(
        default="ScheduleOverrideRemoved", description="ScheduleOverrideRemoved."
    )

    schedule: str = Field(max_length=128, description="The schedule.")
    override_id: str = Field(max_length=64, description="Id of the override removed.")
    person: str = Field(max_length=128, description="Who it had put on call.")
    starts_at: datetime = Field(description="When it began (UTC).")
    ends_at: datetime = Field(description="When it would have ended (UTC).")
    by: str = Field(default="operator", max_length=128, description="Who removed it.")


class StatusUpdatePosted(Event):
    """The Communications Lead published an update on the public status page."""

    EVENT_TYPE: ClassVar[str] = "StatusUpdatePosted"
    event_type: Literal["StatusUpdatePosted"] = Field(
        default="StatusUpdatePosted", description="StatusUpdatePosted."
    )

    status: Literal["investigating", "identified", "monitoring", "resolved"] = Field(
        description="Public state of the incident."
    )
    text: str = Field(min_length=1, max_length=4000, description="The public text, as written.")
    by: str = Field(default="operator", max_length=128, description="Who published it.")


class DrillStarted(Event):
    """A drill injected a runbook failure into the stack on purpose (`jarvis-ir drill`).

    The next incident of `service` opened within `window_s` is the drill's: triage marks
    it (SeverityAssigned.drill_id, a "[DRILL]" title, so notifications say so), and the
    escalator stops it at `drills.max_escalation_level`.
    """

    EVENT_TYPE: ClassVar[str] = "DrillStarted"
    event_type: Literal["DrillStarted"] = Field(default="DrillStarted", description="DrillStarted.")

    drill_id: str = Field(description="Id of the drill (its report's id).")
    scenario: str = Field(max_length=64, description="backend-down, postgres-down, ….")
    service: str = Field(max_length=128, description="The service the fault is injected into.")
    target: str = Field(max_length=128, description="The container the fault is injected into.")
    fault: str = Field(max_length=1024, description="What was done, e.g. docker kill backend.")
    injected_at: datetime = Field(description="When the fault was injected (the drill's t=0).")
    window_s: float = Field(
        default=120.0, gt=0, description="How long after injection an incident is the drill's."
    )
    by: str = Field(default="operator", max_length=128, description="Who ran the drill.")


class NotificationSent(Event):
    """A notifier delivered (or failed to deliver) an escalation."""

    EVENT_TYPE: ClassVar[str] = "NotificationSent"
    event_type: Literal["NotificationSent"] = Field(
        default="NotificationSent", description="NotificationSent."
    )

    channel: str = Field(description="slack, webhook, email, pagerduty.")
    level: int = Field(ge=1, le=5, description="Escalation level notified.")
    step: str = Field(description="The escalation step.")
    delivered: bool = Field(description="Whether the receiver accepted it.")
    attempts: int = Field(default=1, ge=1, description="How many tries it took.")
    detail: str = Field(default="", description="Receiver's answer or the error.")


class SilenceCreated(Event):
    """An operator silenced matching alerts for a while (a maintenance window)."""

    EVENT_TYPE: ClassVar[str] = "SilenceCreated"
    event_type: Literal["SilenceCreated"] = Field(
        default="SilenceCreated", description="SilenceCreated."
    )

    silence_id: str = Field(max_length=64, description="Id of the silence.")
    matchers: list[Matcher] = Field(
        description="All must match: service, check or labels (Alertmanager API v2 shape)."
    )
    starts_at: datetime = Field(description="From when (UTC).")
    ends_at: datetime = Field(description="Until when (UTC).")
    recurrence: Recurrence | None = Field(
        default=None, description="Repeating windows (RRULE, time zone, duration), if any."
    )
    comment: str = Field(default="", max_length=2000, description="Why.")
    by: str = Field(default="operator", max_length=128, description="Who made it.")


class SilenceExpired(Event):
    """A silence was ended before its time."""

    EVENT_TYPE: ClassVar[str] = "SilenceExpired"
    event_type: Literal["SilenceExpired"] = Field(
        default="SilenceExpired", description="SilenceExpired."
    )

    silence_id: str = Field(max_length=64, description="Id of the silence.")
    by: str = Field(default="operator", max_length=128, description="Who expired it.")


class AlertSilenced(Event):
    """Triage kept an alert from opening an incident: a silence covers it. Published
    once per alert fingerprint and silence window; `causation_id` is the alert."""

    EVENT_TYPE: ClassVar[str] = "AlertSilenced"
    event_type: Literal["AlertSilenced"] = Field(
        default="AlertSilenced", description="AlertSilenced."
    )

    silence_id: str = Field(max_length=64, description="The silence that covers it.")
    fingerprint: str = Field(description="Fingerprint of the alert.")
    service: str = Field(description="Service of the alert (canonical name).")
    check: str = Field(description="Check of the alert.")
    summary: str = Field(default="", description="The alert's summary.")
    window_ends_at: datetime = Field(
        description="When the silence's window ends: an alert still firing then is new."
    )


EVENT_TYPES: dict[str, type[Event]] = {
    cls.EVENT_TYPE: cls
    for cls in (
        AlertRaised,
        SeverityAssigned,
        AlertCorrelated,
        ActionRequested,
        ActionCompleted,
        EscalationDue,
        IncidentAcknowledged,
        IncidentResolved,
        NoteAdded,
        RoleAssigned,
        ActionApproved,
        DrillStarted,
        NotificationSent,
        ActionRefused,
        SilenceCreated,
        SilenceExpired,
        AlertSilenced,
        ScheduleOverrideAdded,
        ScheduleOverrideRemoved,
        StatusUpdatePosted,
    )
}


def parse_event(data: dict[str, Any], allowed: tuple[type[Event], ...]) -> Event:
    """Validate a decoded entry as one of `allowed`; the first is the default when
    `event_type` is absent. Raises ValueError (pydantic's ValidationError is one)."""
    event_type = data.get("event_type") or allowed[0].EVENT_TYPE
    cls = EVENT_TYPES.get(str(event_type))
    if cls is None or cls not in allowed:
        names = ", ".join(c.EVENT_TYPE for c in allowed)
        raise ValueError(f"event_type: {event_type!r} is not accepted here (expected {names})")
    return cls.model_validate(data)
