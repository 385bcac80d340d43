"""Who is on call: the pure decision (schedule, overrides, instant) → person, until when.

A schedule's handoffs are an RRULE (python-dateutil): daily and weekly rotations hand off
at the same wall-clock time in the schedule's time zone (zoneinfo), so a shift across a
DST change lasts 23 or 25 hours; `<N>h` rotations hand off every N elapsed hours. Members
take turns in order from the schedule's `start`. An override puts someone else on call
for a while; where overrides overlap, the one created last wins.

Shared by the escalator (resolution when a step fires) and the recorder's API (`/oncall`,
the iCalendar feed).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, HOURLY, WEEKLY, rrule

from shared.settings.oncall import PersonSettings, ScheduleSettings, rotation_hours

__all__ = [
    "OnCall",
    "Override",
    "Resolved",
    "Shift",
    "address_of",
    "on_call",
    "person_at",
    "resolve_contacts",
    "shifts",
]


@dataclass(frozen=True)
class Override:
    """`person` is on call for the schedule from `starts_at` to `ends_at` (UTC)."""

    id: str
    schedule: str
    person: str
    starts_at: datetime
    ends_at: datetime
    created_at: datetime
    created_by: str = "operator"

    def covers(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


@dataclass(frozen=True)
class OnCall:
    """The answer at one instant: `person` (None: nobody) from `since` until `until`."""

    person: str | None
    since: datetime | None
    until: datetime | None
    override_id: str | None = None


@dataclass(frozen=True)
class Shift:
    """A stretch of time with one person on call (None: a gap)."""

    person: str | None
    start: datetime
    end: datetime
    override_id: str | None = None


@lru_cache(maxsize=256)
def _rule(rotation: str, handoff: time, zone: str, start: date) -> rrule:
    """The schedule's handoffs; cached (with its occurrences) per schedule shape."""
    first = datetime.combine(start, handoff, tzinfo=ZoneInfo(zone))
    hours = rotation_hours(rotation)
    if hours is not None:
        # Elapsed hours: computed in UTC, so DST never stretches or shortens a shift.
        return rrule(HOURLY, interval=hours, dtstart=first.astimezone(UTC), cache=True)
    # Wall-clock handoffs: rrule keeps the local time and zoneinfo finds the offset.
    return rrule(DAILY if rotation == "daily" else WEEKLY, dtstart=first, cache=True)


def _rule_of(schedule: ScheduleSettings) -> rrule:
    return _rule(schedule.rotation, schedule.handoff, schedule.time_zone, schedule.start)


def _turn(schedule: ScheduleSettings, shift_start: datetime) -> int:
    """How many handoffs came before the shift starting at `shift_start`."""
    first = _rule_of(schedule)[0]
    hours = rotation_hours(schedule.rotation)
    if hours is not None:
        return int((shift_start - first).total_seconds() // (hours * 3600))
    days = (shift_start.date() - first.date()).days  # local dates: both carry the zone
    return days // (1 if schedule.rotation == "daily" else 7)


def _base(schedule: ScheduleSettings, at: datetime) -> OnCall:
    rule = _rule_of(schedule)
    began: datetime | None = rule.before(at, inc=True)
    ends: datetime | None = rule.after(at)
    if began is None:  # before the schedule's start: a gap
        return OnCall(None, None, ends.astimezone(UTC) if ends else None)
    member = schedule.members[_turn(schedule, began) % len(schedule.members)]
    return OnCall(member, began.astimezone(UTC), ends.astimezone(UTC) if ends else None)


def _winner(overrides: Iterable[Override], at: datetime) -> Override | None:
    active = [o for o in overrides if o.covers(at)]
    return max(active, key=lambda o: (o.created_at, o.id)) if active else None


def person_at(
    schedule: ScheduleSettings, overrides: Sequence[Override], at: datetime
) -> tuple[str | None, str | None]:
    """(person, override id) on call at `at`."""
    winner = _winner(overrides, at)
    if winner is not None:
        return winner.person, winner.id
    return _base(schedule, at).person, None


def on_call(schedule: ScheduleSettings, overrides: Sequence[Override], at: datetime) -> OnCall:
    """Who is on call at `at`, since when and until when (the next change of person)."""
    at = at.astimezone(UTC)
    base = _base(schedule, at)
    person, override_id = person_at(schedule, overrides, at)
    # The answer can change only at a handoff or at an override's start or end.
    changes = sorted(
        {t for o in overrides for t in (o.starts_at, o.ends_at) if t > at}
        | ({base.until} if base.until else set())
    )
    now = (person, override_id)
    until = next((t for t in changes if person_at(schedule, overrides, t) != now), None)
    before = sorted(
        {t for o in overrides for t in (o.starts_at, o.ends_at) if t <= at}
        | ({base.since} if base.since else set()),
        reverse=True,
    )
    since = base.since
    for t in before:
        if person_at(schedule, overrides, t - timedelta(microseconds=1)) != now:
            since = t
            break
    return OnCall(person, since, until, override_id)


def shifts(
    schedule: ScheduleSettings,
    overrides: Sequence[Override],
    start: datetime,
    end: datetime,
) -> list[Shift]:
    """The resolved shifts between `start` and `end`, overrides applied, adjacent stretches
    of one person merged (gaps appear with person None)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    bounds = {start, end}
    bounds.update(t.astimezone(UTC) for t in _rule_of(schedule).between(start, end))
    bounds.update(t for o in overrides for t in (o.starts_at, o.ends_at) if start < t < end)
    edges = sorted(bounds)
    out: list[Shift] = []
    for left, right in itertools.pairwise(edges):
        person, override_id = person_at(schedule, overrides, left)
        last = out[-1] if out else None
        if last and last.person == person and last.override_id == override_id:
            out[-1] = Shift(person, last.start, right, override_id)
        else:
            out.append(Shift(person, left, right, override_id))
    return out


@dataclass(frozen=True)
class Resolved:
    """A level's contacts at one instant: addresses to e-mail, who each schedule named,
    and the schedules that named nobody (a gap, or a schedule no longer configured)."""

    addresses: tuple[str, ...]
    on_call: dict[str, str]
    unfilled: tuple[str, ...]


def resolve_contacts(
    contacts: Iterable[str],
    schedules: Mapping[str, ScheduleSettings],
    overrides: Mapping[str, Sequence[Override]],
    people: Mapping[str, PersonSettings],
    at: datetime,
) -> Resolved:
    """Replace each `schedule:<name>` contact by the person on call at `at`, and each person
    by their e-mail address; fixed addresses stay as they are."""
    addresses: list[str] = []
    named: dict[str, str] = {}
    unfilled: list[str] = []
    for contact in contacts:
        if not contact.startswith("schedule:"):
            addresses.append(contact)
            continue
        name = contact.removeprefix("schedule:")
        schedule = schedules.get(name)
        person = person_at(schedule, overrides.get(name, ()), at)[0] if schedule else None
        if person is None:
            unfilled.append(name)
            continue
        named[name] = person
        address = address_of(person, people)
        if address:
            addresses.append(address)
    return Resolved(tuple(dict.fromkeys(addresses)), named, tuple(unfilled))


def address_of(person: str, people: Mapping[str, PersonSettings]) -> str | None:
    """A person's e-mail address: from the directory, or the name itself when it is one."""
    entry = people.get(person)
    if entry is not None:
        return entry.email
    return person if "@" in person else None
