"""Rotation math: who is on call at an instant, until when, across DST changes and with
overrides; and resolving a level's contacts through schedules and the people directory."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.rotation import Override, on_call, person_at, resolve_contacts, shifts
from shared.settings import PersonSettings, ScheduleSettings

pytestmark = pytest.mark.unit

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def _schedule(rotation: str = "daily", **extra: object) -> ScheduleSettings:
    data: dict[str, object] = {
        "members": ["alice", "bob", "carol"],
        "rotation": rotation,
        "time_zone": "Europe/Berlin",
        "start": date(2026, 3, 23),  # a Monday
        "handoff": time(9, 0),
    }
    data.update(extra)
    return ScheduleSettings.model_validate(data)


def _local(*args: int, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def _override(person: str, start: datetime, end: datetime, created: int = 0) -> Override:
    return Override(
        id=f"o-{person}-{created}",
        schedule="primary",
        person=person,
        starts_at=start.astimezone(UTC),
        ends_at=end.astimezone(UTC),
        created_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=created),
    )


def test_daily_rotation_takes_turns_in_order_at_the_handoff_time() -> None:
    s = _schedule()
    assert on_call(s, [], _local(2026, 3, 23, 9, 0)).person == "alice"
    assert on_call(s, [], _local(2026, 3, 24, 8, 59)).person == "alice"
    assert on_call(s, [], _local(2026, 3, 24, 9, 0)).person == "bob"
    assert on_call(s, [], _local(2026, 3, 25, 12, 0)).person == "carol"
    assert on_call(s, [], _local(2026, 3, 26, 9, 0)).person == "alice"  # round again
    answer = on_call(s, [], _local(2026, 3, 24, 15, 0))
    assert answer.since == _local(2026, 3, 24, 9, 0)
    assert answer.until == _local(2026, 3, 25, 9, 0)


def test_nobody_is_on_call_before_the_schedule_starts() -> None:
    answer = on_call(_schedule(), [], _local(2026, 3, 23, 8, 0))
    assert answer.person is None
    assert answer.until == _local(2026, 3, 23, 9, 0)


def test_daily_handoff_keeps_the_wall_clock_across_spring_forward() -> None:
    # Berlin moves from CET to CEST at 2026-03-29 02:00: that shift is 23 hours long.
    s = _schedule()
    answer = on_call(s, [], _local(2026, 3, 28, 20, 0))
    assert answer.since == _local(2026, 3, 28, 9, 0)
    assert answer.until == _local(2026, 3, 29, 9, 0)
    assert answer.until is not None
    assert answer.since is not None
    assert answer.until - answer.since == timedelta(hours=23)
    assert answer.until.astimezone(UTC) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)


def test_daily_handoff_keeps_the_wall_clock_across_fall_back() -> None:
    # Back to CET at 2026-10-25 03:00 CEST: that shift is 25 hours long.
    s = _schedule()
    answer = on_call(s, [], _local(2026, 10, 24, 20, 0))
    assert answer.until is not None
    assert answer.since is not None
    assert answer.until - answer.since == timedelta(hours=25)
    assert answer.until.astimezone(UTC) == datetime(2026, 10, 25, 8, 0, tzinfo=UTC)
    # Turns keep counting by local dates: 216 days after the start, 216 % 3 == 0.
    assert on_call(s, [], _local(2026, 10, 25, 9, 0)).person == "alice"


def test_a_handoff_inside_the_skipped_hour_happens_at_the_first_instant_after_it() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29; zoneinfo reads it with the old offset,
    # i.e. 01:30 UTC = 03:30 CEST. The day before and after hand off at 02:30 local.
    s = _schedule(handoff=time(2, 30))
    answer = on_call(s, [], _local(2026, 3, 29, 12, 0))
    assert answer.since == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert answer.until == _local(2026, 3, 30, 2, 30)


def test_a_handoff_in_the_repeated_hour_happens_at_its_first_occurrence() -> None:
    s = _schedule(handoff=time(2, 30))
    answer = on_call(s, [], _local(2026, 10, 25, 12, 0))
    # 02:30 happens twice on 2026-10-25; the first one is CEST (00:30 UTC).
    assert answer.since == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_hour_rotations_count_elapsed_hours_across_dst() -> None:
    s = _schedule("12h", time_zone="America/New_York", start=date(2026, 3, 7))
    # New York springs forward on 2026-03-08; 12 elapsed hours move the wall clock.
    first = on_call(s, [], _local(2026, 3, 7, 10, 0, zone=NEW_YORK))
    assert first.person == "alice"
    assert first.until == _local(2026, 3, 7, 21, 0, zone=NEW_YORK)
    later = on_call(s, [], _local(2026, 3, 8, 12, 0, zone=NEW_YORK))
    assert later.person == "carol"
    assert later.since == _local(2026, 3, 8, 10, 0, zone=NEW_YORK)  # 09:00 EST + 12h + 12h
    assert later.until is not None
    assert later.since is not None
    assert later.until - later.since == timedelta(hours=12)


def test_weekly_rotation_hands_off_on_the_start_weekday() -> None:
    s = _schedule("weekly")
    assert on_call(s, [], _local(2026, 3, 29, 23, 0)).person == "alice"  # Sunday
    monday = on_call(s, [], _local(2026, 3, 30, 9, 0))
    assert monday.person == "bob"
    assert monday.until == _local(2026, 4, 6, 9, 0)
    assert on_call(s, [], _local(2026, 4, 13, 9, 0)).person == "alice"


def test_an_override_takes_over_and_the_rotation_resumes_after_it() -> None:
    s = _schedule()
    saturday = _override("dave", _local(2026, 3, 28, 0, 0), _local(2026, 3, 29, 0, 0))
    before = on_call(s, [saturday], _local(2026, 3, 27, 20, 0))
    assert before.person == "bob"
    assert before.until == _local(2026, 3, 28, 0, 0)
    during = on_call(s, [saturday], _local(2026, 3, 28, 12, 0))
    assert (during.person, during.override_id) == ("dave", saturday.id)
    assert during.since == _local(2026, 3, 28, 0, 0)
    assert during.until == _local(2026, 3, 29, 0, 0)
    after = on_call(s, [saturday], _local(2026, 3, 29, 0, 0))
    assert after.person == "carol"  # carol's shift began 2026-03-28 09:00
    assert after.until == _local(2026, 3, 29, 9, 0)


def test_the_override_created_last_wins_where_overrides_overlap() -> None:
    s = _schedule()
    older = _override("dave", _local(2026, 3, 24, 10), _local(2026, 3, 24, 20), created=1)
    newer = _override("erin", _local(2026, 3, 24, 12), _local(2026, 3, 24, 14), created=2)
    assert person_at(s, [older, newer], _local(2026, 3, 24, 13)) == ("erin", newer.id)
    assert person_at(s, [older, newer], _local(2026, 3, 24, 15)) == ("dave", older.id)
    answer = on_call(s, [older, newer], _local(2026, 3, 24, 11))
    assert answer.until == _local(2026, 3, 24, 12)


def test_shifts_split_at_handoffs_and_overrides_and_merge_one_persons_stretch() -> None:
    s = _schedule()
    cover = _override("bob", _local(2026, 3, 23, 15), _local(2026, 3, 24, 9))
    found = shifts(s, [cover], _local(2026, 3, 23, 0), _local(2026, 3, 25, 0))
    assert [(x.person, x.start, x.end) for x in found] == [
        (None, _local(2026, 3, 23, 0), _local(2026, 3, 23, 9)),
        ("alice", _local(2026, 3, 23, 9), _local(2026, 3, 23, 15)),
        ("bob", _local(2026, 3, 23, 15), _local(2026, 3, 24, 9)),
        ("bob", _local(2026, 3, 24, 9), _local(2026, 3, 25, 0)),
    ]
    assert found[2].override_id == cover.id
    assert found[3].override_id is None


def test_contacts_resolve_through_schedules_and_the_directory() -> None:
    s = _schedule(members=["alice", "ops@example.org"])
    people = {"alice": PersonSettings(email="alice@example.org", slack_user_id="U0ALICE")}
    at_alice = _local(2026, 3, 23, 10)
    resolved = resolve_contacts(
        ["schedule:primary", "boss@example.org", "schedule:gone"],
        {"primary": s},
        {},
        people,
        at_alice,
    )
    assert resolved.addresses == ("alice@example.org", "boss@example.org")
    assert resolved.on_call == {"primary": "alice"}
    assert resolved.unfilled == ("gone",)
    raw = resolve_contacts(
        ["schedule:primary"], {"primary": s}, {}, people, _local(2026, 3, 24, 10)
    )
    assert raw.addresses == ("ops@example.org",)
    early = resolve_contacts(["schedule:primary"], {"primary": s}, {}, people, _local(2026, 1, 1))
    assert early.addresses == ()
    assert early.unfilled == ("primary",)
