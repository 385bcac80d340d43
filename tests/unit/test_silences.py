"""Silence matching and maintenance-window arithmetic (pure), daylight-saving changes included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from shared.silences import (
    Silence,
    SilenceIndex,
    SilenceSpec,
    alert_labels,
    canonical_service,
    current_or_next,
    state_at,
    windows_between,
)

pytestmark = pytest.mark.unit

MADE = datetime(2026, 1, 1, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def silence(matchers: list[dict[str, Any]] | None = None, **fields: Any) -> Silence:
    base: dict[str, Any] = {
        "id": "s1",
        "created_at": MADE,
        "matchers": matchers or [{"name": "service", "value": "backend"}],
        "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2026-01-01T02:00:00Z",
    }
    return Silence(**{**base, **fields})


def sundays_in_berlin(**fields: Any) -> Silence:
    """Every Sunday 02:00–04:00 Europe/Berlin, for 2026 (the README's example)."""
    return silence(
        starts_at="2026-01-04T01:00:00Z",  # 02:00 CET
        ends_at="2027-01-01T00:00:00Z",
        recurrence={"rrule": "FREQ=WEEKLY;BYDAY=SU", "timezone": "Europe/Berlin", "duration": 7200},
        **fields,
    )


def test_matchers_follow_alertmanager_v2() -> None:
    labels = alert_labels("backend", "health", {"env": "prod", "service": "ignored"})
    assert labels["service"] == "backend"  # the alert's own field wins over a label
    cases = [
        ({"name": "service", "value": "backend"}, True),
        ({"name": "service", "value": "back"}, False),  # equality, not substring
        ({"name": "service", "value": "back.*", "isRegex": True}, True),
        ({"name": "service", "value": "ack", "isRegex": True}, False),  # anchored
        ({"name": "service", "value": "backend", "isEqual": False}, False),
        ({"name": "env", "value": "staging", "isEqual": False}, True),
        ({"name": "region", "value": ""}, True),  # a missing label reads as ""
        ({"name": "check", "value": "health|disk", "isRegex": True}, True),
        ({"name": "service", "value": "back.nd"}, False),  # a plain value is literal
    ]
    for matcher, expected in cases:
        # (With a second matcher: one matching only empty values would be refused alone.)
        pair = silence([matcher, {"name": "check", "value": "health"}])
        assert pair.matches(labels) is expected, matcher
    both = silence([{"name": "service", "value": "backend"}, {"name": "env", "value": "dev"}])
    assert not both.matches(labels)  # all must match


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"matchers": []}, "at least 1"),
        ({"matchers": [{"name": "env", "value": "", "isRegex": False}]}, "empty value"),
        ({"matchers": [{"name": "env", "value": ".*", "isRegex": True}]}, "empty value"),
        ({"matchers": [{"name": "service", "value": "(", "isRegex": True}]}, "regular expr"),
        ({"matchers": [{"name": "bad name", "value": "x"}]}, "pattern"),
        ({"ends_at": "2025-12-31T00:00:00Z"}, "after starts_at"),
        ({"starts_at": "2026-01-01T00:00:00"}, "offset"),
        ({"recurrence": {"rrule": "FREQ=MINUTELY", "duration": 60}}, "FREQ"),
        ({"recurrence": {"rrule": "FREQ=WEEKLY;UNTIL=20270101T000000Z", "duration": 60}}, "UNTIL"),
        ({"recurrence": {"rrule": "FREQ=WEEKLY;BYDAY=XX", "duration": 60}}, "RRULE"),
        ({"recurrence": {"rrule": "FREQ=DAILY", "timezone": "Mars/Base", "duration": 60}}, "zone"),
        ({"recurrence": {"rrule": "FREQ=DAILY", "duration": 1}}, "1 minute"),
    ],
)
def test_a_silence_that_makes_no_sense_is_refused(fields: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "matchers": [{"name": "service", "value": "backend"}],
        "starts_at": "2026-01-01T00:00:00Z",
        "ends_at": "2026-01-02T00:00:00Z",
    }
    with pytest.raises(ValidationError, match=message):
        SilenceSpec(**{**base, **fields})


def test_a_one_off_silence_is_pending_active_then_expired() -> None:
    one = silence()
    assert state_at(one, utc("2025-12-31T23:59:59Z")) == "pending"
    assert state_at(one, utc("2026-01-01T00:00:00Z")) == "active"
    assert state_at(one, utc("2026-01-01T01:59:59Z")) == "active"
    assert state_at(one, utc("2026-01-01T02:00:00Z")) == "expired"
    early = one.model_copy(update={"expired_at": utc("2026-01-01T00:30:00Z")})
    assert state_at(early, utc("2026-01-01T00:29:00Z")) == "active"
    assert state_at(early, utc("2026-01-01T00:30:00Z")) == "expired"


def test_a_weekly_window_keeps_its_wall_clock_time_across_daylight_saving() -> None:
    sundays = sundays_in_berlin()
    # Winter (CET, UTC+1): 02:00–04:00 local is 01:00–03:00 UTC.
    assert current_or_next(sundays, utc("2026-01-10T12:00:00Z")) == (
        utc("2026-01-11T01:00:00Z"),
        utc("2026-01-11T03:00:00Z"),
    )
    # Summer (CEST, UTC+2): the same local hours are 00:00–02:00 UTC.
    assert current_or_next(sundays, utc("2026-07-01T00:00:00Z")) == (
        utc("2026-07-05T00:00:00Z"),
        utc("2026-07-05T02:00:00Z"),
    )
    # 29 March 2026: clocks jump from 02:00 to 03:00, so the window is 03:00–04:00 CEST.
    assert current_or_next(sundays, utc("2026-03-28T12:00:00Z")) == (
        utc("2026-03-29T01:00:00Z"),
        utc("2026-03-29T02:00:00Z"),
    )
    # 25 October 2026: 02:00–03:00 happens twice; 02:00 CEST to 04:00 CET is three hours.
    assert current_or_next(sundays, utc("2026-10-24T12:00:00Z")) == (
        utc("2026-10-25T00:00:00Z"),
        utc("2026-10-25T03:00:00Z"),
    )
    assert state_at(sundays, utc("2026-10-25T02:30:00Z")) == "active"
    assert state_at(sundays, utc("2026-10-25T03:00:00Z")) == "pending"
    assert state_at(sundays, utc("2026-01-14T12:00:00Z")) == "pending"  # a Wednesday
    assert state_at(sundays, utc("2027-01-01T00:00:00Z")) == "expired"
    july = windows_between(sundays, utc("2026-07-01T00:00:00Z"), utc("2026-08-01T00:00:00Z"))
    assert [w[0].day for w in july] == [5, 12, 19, 26]
    assert all(w[1] - w[0] == timedelta(hours=2) for w in july)


def test_windows_start_at_starts_at_and_are_clipped_to_the_end() -> None:
    daily = silence(
        starts_at="2026-01-01T00:30:00Z",
        ends_at="2026-01-03T01:00:00Z",
        recurrence={"rrule": "FREQ=DAILY;BYHOUR=0;BYMINUTE=0", "duration": "PT2H"},
    )
    found = windows_between(daily, utc("2026-01-01T00:00:00Z"), utc("2026-01-05T00:00:00Z"))
    # starts_at is the RRULE's DTSTART: the 1 January window began before it and is not one.
    assert found == [
        (utc("2026-01-02T00:00:00Z"), utc("2026-01-02T02:00:00Z")),
        (utc("2026-01-03T00:00:00Z"), utc("2026-01-03T01:00:00Z")),  # ends_at cuts it
    ]
    expired = daily.model_copy(update={"expired_at": utc("2026-01-02T00:15:00Z")})
    assert windows_between(expired, utc("2026-01-01T00:00:00Z"), utc("2026-01-05T00:00:00Z"))[
        -1
    ] == (utc("2026-01-02T00:00:00Z"), utc("2026-01-02T00:15:00Z"))
    counted = silence(
        starts_at="2026-01-01T00:00:00Z",
        ends_at="2027-01-01T00:00:00Z",
        recurrence={"rrule": "FREQ=DAILY;COUNT=2", "duration": 600},
    )
    assert state_at(counted, utc("2026-01-02T00:05:00Z")) == "active"
    assert state_at(counted, utc("2026-01-02T00:10:00Z")) == "expired"


def test_the_index_finds_the_silence_in_force_and_follows_its_windows() -> None:
    sundays = sundays_in_berlin()
    other = silence([{"name": "service", "value": "ollama"}], id="s2")
    index = SilenceIndex([other, sundays])
    backend = alert_labels("backend", "health", {})
    sunday_night = utc("2026-01-11T01:30:00Z")
    found = index.silencing(backend, sunday_night)
    assert found is not None
    assert found[0].id == "s1"
    assert found[1] == (utc("2026-01-11T01:00:00Z"), utc("2026-01-11T03:00:00Z"))
    # The remembered window is reused within it and dropped when it ends.
    assert index.silencing(backend, utc("2026-01-11T02:59:59Z")) is not None
    assert index.silencing(backend, utc("2026-01-11T03:00:00Z")) is None
    assert index.silencing(backend, utc("2026-01-18T01:00:00Z")) is not None
    assert index.silencing(alert_labels("redis", "ping", {}), sunday_night) is None


def test_service_names_are_canonical() -> None:
    aliases = {"postgresql": "postgres", "db": "postgres"}
    assert canonical_service("sutazai-postgres", aliases) == "postgres"
    assert canonical_service(" PostgreSQL ", aliases) == "postgres"
    assert canonical_service("backend", aliases) == "backend"
