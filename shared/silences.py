"""Silences and maintenance windows: what they are and when they apply (pure, no I/O).

A silence has matchers in Alertmanager's API v2 shape (`name`, `value`, `isRegex`,
`isEqual`) over an alert's `service` (canonical name), `check` and labels; all must match,
a regex must match the whole value, and a label the alert lacks reads as "" (as in
Alertmanager). It applies from `starts_at` to `ends_at` — or, with a `recurrence`, during
each window of an iCalendar RRULE between them: `starts_at` is the RRULE's DTSTART (no
window begins before it), every window starts at the wall-clock time of `starts_at` in the
recurrence's time zone (unless BYHOUR/BYMINUTE say otherwise) and lasts `duration` of
wall-clock time, so "Sundays 02:00–04:00 Europe/Berlin" stays 02:00–04:00
through daylight-saving changes (on the night the clocks skip 02:00 it is 03:00–04:00; on
the night 02:00–03:00 happens twice it covers both). python-dateutil expands the RRULE and
zoneinfo (tzdata) knows the zones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Matcher",
    "Recurrence",
    "Silence",
    "SilenceIndex",
    "SilenceSpec",
    "SilenceState",
    "Window",
    "alert_labels",
    "canonical_service",
    "current_or_next",
    "state_at",
    "windows_between",
]

SilenceState = Literal["active", "pending", "expired"]
Window = tuple[datetime, datetime]  # [start, end) in UTC

_FREQ = re.compile(r"(?:^|;)FREQ=([A-Z]+)(?:;|$)")
_ALLOWED_FREQ = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
# How many occurrences one look-up may walk through (an HOURLY rule over a year is 8,760):
# beyond it the silence is treated as over, rather than letting one rule stall a service.
_MAX_STEPS = 100_000
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def canonical_service(name: str, aliases: Mapping[str, str]) -> str:
    """CONTRACT §5: lower case, `sutazai-` prefix dropped, then the configured aliases."""
    plain = name.strip().lower().removeprefix("sutazai-")
    return aliases.get(plain, plain)


def alert_labels(service: str, check: str, labels: dict[str, str]) -> dict[str, str]:
    """What matchers see of an alert: its labels, with `service` and `check` taking
    precedence over labels of the same name."""
    return {**labels, "service": service, "check": check}


class Matcher(BaseModel):
    """One condition, as Alertmanager's API v2 writes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$",
        description="`service`, `check`, or a label name.",
    )
    value: str = Field(max_length=1024, description="The value, or a regular expression.")
    isRegex: bool = Field(default=False, description="`value` is a regular expression.")
    isEqual: bool = Field(default=True, description="False: the condition is negated.")

    @field_validator("value")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(c) < 32 for c in value):
            raise ValueError("must not contain control characters")
        return value

    @model_validator(mode="after")
    def _compiles(self) -> Matcher:
        if self.isRegex:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"value: not a regular expression: {exc}") from exc
        return self

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile(self.value if self.isRegex else re.escape(self.value))

    def matches(self, labels: dict[str, str]) -> bool:
        found = self._pattern.fullmatch(labels.get(self.name, "")) is not None
        return found is self.isEqual


class Recurrence(BaseModel):
    """Windows repeating as an iCalendar RRULE, in a time zone, each `duration` long."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rrule: str = Field(
        min_length=6,
        max_length=512,
        description="One RRULE (RFC 5545), e.g. FREQ=WEEKLY;BYDAY=SU; HOURLY or slower, "
        "without DTSTART (starts_at gives it) or UNTIL (ends_at ends it).",
        examples=["FREQ=WEEKLY;BYDAY=SU"],
    )
    timezone: str = Field(
        default="UTC", max_length=64, description="IANA time zone of the wall-clock times."
    )
    duration: timedelta = Field(
        description="Length of each window (seconds or ISO 8601, e.g. PT2H), wall-clock.",
        examples=["PT2H"],
    )

    @field_validator("rrule")
    @classmethod
    def _one_rule(cls, value: str) -> str:
        text = value.strip().removeprefix("RRULE:").upper()
        if any(c in text for c in "\r\n") or "DTSTART" in text or "UNTIL=" in text:
            raise ValueError("one RRULE line, without DTSTART or UNTIL")
        freq = _FREQ.search(text)
        if not freq or freq.group(1) not in _ALLOWED_FREQ:
            raise ValueError(f"FREQ must be one of {', '.join(_ALLOWED_FREQ)}")
        try:
            parsed = rrulestr(text, dtstart=datetime(2000, 1, 1))
        except Exception as exc:  # dateutil raises several kinds for a malformed rule
            raise ValueError(f"not a valid RRULE: {exc}") from exc
        if not isinstance(parsed, rrule):
            raise ValueError("one RRULE only")
        return text

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("duration")
    @classmethod
    def _length(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=31):
            raise ValueError("must be between 1 minute and 31 days")
        return value


class SilenceSpec(BaseModel):
    """What an operator asks for: the body of `POST /api/v1/silences`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    matchers: list[Matcher] = Field(
        min_length=1, max_length=32, description="All must match (Alertmanager API v2 shape)."
    )
    starts_at: datetime = Field(description="From when (RFC 3339).")
    ends_at: datetime = Field(description="Until when (RFC 3339); after starts_at.")
    comment: str = Field(default="", max_length=2000, description="Why: planned work, ticket.")
    created_by: str = Field(
        default="operator",
        min_length=1,
        max_length=128,
        pattern=r"^[^\x00-\x1f]+$",
        description="Who made it.",
    )
    recurrence: Recurrence | None = Field(
        default=None, description="Repeating windows; absent: one window starts_at–ends_at."
    )

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone offset (RFC 3339), e.g. 2026-01-04T01:00:00Z")
        value = value.astimezone(UTC)
        if not _EARLIEST <= value <= _LATEST:
            raise ValueError("must be between 1970 and 2200")
        return value

    @model_validator(mode="after")
    def _sensible(self) -> SilenceSpec:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if all(m.matches({}) for m in self.matchers):
            # Alertmanager's rule: matchers that all match the empty string silence everything.
            raise ValueError("matchers: at least one must not match an empty value")
        return self


class Silence(SilenceSpec):
    """A silence as stored: the spec, its id, and when it was made or expired early."""

    id: str = Field(min_length=1, max_length=64, description="The silence's id.")
    created_at: datetime = Field(description="When it was made.")
    expired_at: datetime | None = Field(default=None, description="When it was expired early.")
    expired_by: str | None = Field(default=None, max_length=128, description="Who expired it.")

    @property
    def end(self) -> datetime:
        """When it stops applying: `ends_at`, or earlier if expired early."""
        return min(self.ends_at, self.expired_at) if self.expired_at else self.ends_at

    def matches(self, labels: dict[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)


def windows_between(silence: Silence, start: datetime, end: datetime) -> list[Window]:
    """The silence's windows overlapping [start, end), clipped to its own bounds, in UTC."""
    out: list[Window] = []
    for window in _windows_from(silence, start):
        if window[0] >= end:
            break
        out.append(window)
    return out


def _windows_from(silence: Silence, at: datetime) -> Iterator[Window]:
    """Windows ending after `at`, in order (clipped to starts_at and the end)."""
    first, last = silence.starts_at, silence.end
    rec = silence.recurrence
    if rec is None:
        if last > at and first < last:
            yield (first, last)
        return
    zone = ZoneInfo(rec.timezone)
    rule = rrulestr(rec.rrule, dtstart=silence.starts_at.astimezone(zone).replace(tzinfo=None))
    assert isinstance(rule, rrule)  # validated when the silence was made
    # Occurrences are wall-clock times; a window may end up to a day away from its local
    # start once converted, so start looking a little before `at`.
    since = (at.astimezone(zone) - rec.duration - timedelta(days=1)).replace(tzinfo=None)
    for steps, local in enumerate(rule.xafter(since, inc=True)):
        if steps > _MAX_STEPS:
            return
        begin = local.replace(tzinfo=zone).astimezone(UTC)
        if begin >= last:
            return
        finish = (local + rec.duration).replace(tzinfo=zone).astimezone(UTC)
        window = (begin, min(finish, last))
        if window[1] > at and window[0] < window[1]:
            yield window


def current_or_next(silence: Silence, at: datetime) -> Window | None:
    """The window containing `at`, else the next one; None when none is left."""
    return next(iter(_windows_from(silence, at)), None)


def state_at(silence: Silence, at: datetime) -> SilenceState:
    """active (a window contains `at`), pending (one is to come) or expired."""
    window = current_or_next(silence, at)
    if window is None:
        return "expired"
    return "active" if window[0] <= at else "pending"


@dataclass(frozen=True)
class _Memo:
    computed_at: datetime
    window: Window | None  # the current or next window then; None: no window left


class SilenceIndex:
    """The silences in force, for checking many alerts quickly.

    Each silence's current or next window is computed once and reused until it ends, so
    checking an alert costs its matchers, not an RRULE expansion.
    """

    def __init__(self, silences: list[Silence]) -> None:
        self.silences = list(silences)
        self._memo: dict[str, _Memo] = {}

    def _window(self, silence: Silence, at: datetime) -> Window | None:
        memo = self._memo.get(silence.id)
        # Still true while time has not gone past the window found: no window lies between.
        if (
            memo is not None
            and memo.computed_at <= at
            and (memo.window is None or at < memo.window[1])
        ):
            return memo.window
        window = current_or_next(silence, at)
        self._memo[silence.id] = _Memo(at, window)
        return window

    def active(self, silence: Silence, at: datetime) -> Window | None:
        """The window of `silence` containing `at`, if any."""
        window = self._window(silence, at)
        return window if window is not None and window[0] <= at < window[1] else None

    def silencing(self, labels: dict[str, str], at: datetime) -> tuple[Silence, Window] | None:
        """The first silence in force at `at` whose matchers match `labels`."""
        for silence in self.silences:
            if silence.matches(labels):
                window = self.active(silence, at)
                if window is not None:
                    return silence, window
        return None
