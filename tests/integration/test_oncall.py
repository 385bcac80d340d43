"""On-call end to end, on real Redis, SMTP and HTTP receivers: a rotation handing off
mid-incident, an override set through the API, roles filled from a schedule, `/oncall`,
and the iCalendar feed parsed back by the icalendar library."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from typing import Any

import icalendar
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from services.escalator.main import build as build_escalator
from services.recorder.main import build as build_recorder
from shared.bus import EventBus
from shared.clock import ManualClock
from shared.events import Severity
from shared.settings import Settings
from tests.helpers import eventually, read_stream, running
from tests.integration._escalator_support import escalations_of, http_receiver, severity_event
from tests.integration.test_escalator_notifiers import FAST_RETRY, MailHandler, smtp_receiver

pytestmark = pytest.mark.integration

TOKEN = "oncall-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# 08:50 UTC: alice's shift; the daily handoff to bob is at 09:00.
T0 = datetime(2026, 3, 2, 8, 50, tzinfo=UTC)
PEOPLE = {
    "alice": {"email": "alice@example.org", "slack_user_id": "U0ALICE"},
    "bob": {"email": "bob@example.org", "slack_user_id": "U0BOB"},
    "carol": {"email": "carol@example.org", "slack_user_id": "U0CAROL"},
}


def _settings(make: Callable[..., Settings], tmp: Any, **escalator: Any) -> Settings:
    section: dict[str, Any] = {
        "schedules": {
            "primary": {
                "members": ["alice", "bob"],
                "rotation": "daily",
                "handoff": "09:00",
                "time_zone": "UTC",
                "start": "2026-03-01",
            }
        },
        "people": PEOPLE,
        "levels": {"level_1": {"contacts": ["schedule:primary"], "channels": ["email"]}},
    }
    section.update(escalator)
    return make(
        api_token=TOKEN,
        database_url=f"sqlite+aiosqlite:///{tmp / 'recorder.sqlite3'}",
        escalator=section,
    )


async def _opened(redis: Redis, clock: ManualClock, severity: Severity = Severity.P1) -> str:
    incident = str(uuid.uuid4())
    await EventBus(redis).publish(severity_event(incident, severity, clock.now()))
    await eventually(lambda: redis.exists(f"jarvis:escalator:timers:{incident}"))
    return incident


async def test_a_rotation_hands_off_mid_incident_and_an_override_takes_the_next_page(
    redis: Redis, make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    clock = ManualClock(T0)
    mail = MailHandler()
    with http_receiver() as critical:
        async with smtp_receiver(mail) as smtp_port:
            settings = _settings(
                make_settings,
                tmp_path,
                notifier={
                    "retry": FAST_RETRY,
                    "email": {"smtp_host": "127.0.0.1", "smtp_port": smtp_port, "starttls": False},
                },
                routes={
                    "critical": {"slack_webhook_url": critical.url, "emails": []},
                    "engineering": {"emails": []},
                },
                roles={"incident_commander": {"primary": "primary"}},
            )
            builders = [build_escalator, build_recorder]
            async with running(settings, builders, clock=clock) as (client, _):
                first = await _opened(redis, clock)
                before = (await client.get("/api/v1/oncall")).json()
                assert before["schedules"]["primary"]["person"] == "alice"
                assert before["levels"][0]["addresses"] == ["alice@example.org"]

                # The P1 matrix pages level 1 after 15 minutes: 09:05, after the handoff.
                clock.advance(timedelta(minutes=15))
                (due,) = await eventually(lambda: escalations_of(redis, first))
                assert due["on_call"] == {"primary": "bob"}
                assert due["contacts"] == ["bob@example.org"]
                assert "bob on call for primary" in due["reason"]
                await eventually(lambda: _have(mail.messages, 1))
                assert mail.messages[0].rcpt_tos == ["bob@example.org"]

                # carol takes the next hour for bob, through the API.
                body = {
                    "person": "carol",
                    "starts_at": clock.now().isoformat(),
                    "ends_at": (clock.now() + timedelta(hours=1)).isoformat(),
                    "by": "bob",
                }
                url = "/api/v1/schedules/primary/overrides"
                assert (await client.post(url, json=body)).status_code == 401
                created = await client.post(url, json=body, headers=AUTH)
                assert created.status_code == 201, created.text
                override = created.json()
                assert override["person"] == "carol"
                now = (await client.get("/api/v1/oncall")).json()["schedules"]["primary"]
                assert (now["person"], now["override_id"]) == ("carol", override["id"])

                second = await _opened(redis, clock)
                clock.advance(timedelta(minutes=15))
                (paged,) = await eventually(lambda: escalations_of(redis, second))
                assert paged["on_call"] == {"primary": "carol"}
                await eventually(lambda: _have(mail.messages, 2))
                assert mail.messages[1].rcpt_tos == ["carol@example.org"]
                message = message_from_bytes(mail.messages[1].original_content or b"")
                assert "carol on call for primary" in message.get_payload()

                # Roles: the incident commander came from the schedule at the opening.
                roles = [
                    e
                    for e in await read_stream(redis, "jarvis:incidents")
                    if e["event_type"] == "RoleAssigned" and e["incident_id"] == first
                ]
                assert [(r["role"], r["person"], r["producer"]) for r in roles] == [
                    ("incident_commander", "alice", "escalator")
                ]

                # The critical channel heard the opening, the role, the escalation (bob
                # mentioned, with an Acknowledge button), each once.
                async def posts() -> list[dict[str, Any]]:
                    return [b for b in critical.bodies() if first in str(b)]

                await eventually(lambda: _count(posts, 3))
                texts = [b["text"] for b in await posts()]
                assert any("incident opened" in t for t in texts)
                assert any("Incident Commander: alice" in t for t in texts)
                (escalation,) = [b for b in await posts() if "escalation to level 1" in b["text"]]
                assert "<@U0BOB>" in escalation["text"]
                (actions,) = [b for b in escalation["blocks"] if b["type"] == "actions"]
                assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
                    ("jarvis.ack", first)
                ]

                # The override is on the audit trail, and deleting it is too.
                deleted = await client.delete(f"{url}/{override['id']}", headers=AUTH)
                assert deleted.status_code == 204
                assert (
                    await client.delete(f"{url}/{override['id']}", headers=AUTH)
                ).status_code == 404
                kinds = [
                    (e["event_type"], e["override_id"])
                    for e in await read_stream(redis, "jarvis:incidents")
                    if e["event_type"].startswith("ScheduleOverride")
                ]
                assert kinds == [
                    ("ScheduleOverrideAdded", override["id"]),
                    ("ScheduleOverrideRemoved", override["id"]),
                ]
                after = (await client.get("/api/v1/oncall")).json()["schedules"]["primary"]
                assert after["person"] == "bob"


async def _count(posts: Callable[[], Any], n: int) -> bool:
    return len(await posts()) >= n


async def _have(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def _recorded(database_url: str, event_id: str) -> str | None:
    """The event type the recorder stored under `event_id`, read from its database."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            row = await conn.execute(
                text("SELECT event_type FROM events WHERE event_id = :id"), {"id": event_id}
            )
            found = row.scalar()
            return str(found) if found else None
    finally:
        await engine.dispose()


async def test_overrides_are_validated_and_recorded_and_the_feed_parses_back(
    redis: Redis, make_settings: Callable[..., Settings], tmp_path: Any
) -> None:
    clock = ManualClock(T0)
    settings = _settings(make_settings, tmp_path, ics_days=7)
    async with running(settings, [build_recorder], clock=clock) as (client, _):
        url = "/api/v1/schedules/primary/overrides"
        saturday = datetime(2026, 3, 7, tzinfo=UTC)
        good = {
            "person": "carol",
            "starts_at": saturday.isoformat(),
            "ends_at": (saturday + timedelta(days=1)).isoformat(),
        }
        for bad, field in (
            ({**good, "person": "mallory"}, "person"),
            ({**good, "ends_at": good["starts_at"]}, "ends_at"),
            (
                {**good, "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z"},
                "ends_at",
            ),
            ({**good, "colour": "red"}, "colour"),
        ):
            answer = await client.post(url, json=bad, headers=AUTH)
            assert answer.status_code == 422, bad
            assert field in answer.text
        assert (
            await client.post("/api/v1/schedules/nope/overrides", json=good, headers=AUTH)
        ).status_code == 404
        headers = {**AUTH, "Idempotency-Key": "sat-for-bob"}
        first = (await client.post(url, json=good, headers=headers)).json()
        again = (await client.post(url, json=good, headers=headers)).json()
        assert first["id"] == again["id"]
        assert [o["id"] for o in (await client.get(url)).json()] == [first["id"]]

        # Recorded once, with the person and the window (the recorder stores the event).
        async def stored() -> list[Any]:
            return [
                e
                for e in await read_stream(redis, "jarvis:incidents")
                if e["event_type"] == "ScheduleOverrideAdded"
            ]

        (added,) = await eventually(stored)
        assert (added["person"], added["by"], added["schedule"]) == ("carol", "operator", "primary")
        assert settings.database_url
        stored_type = await eventually(
            lambda: _recorded(settings.database_url or "", added["event_id"])
        )
        assert stored_type == "ScheduleOverrideAdded"

        feed = await client.get("/api/v1/schedules/primary.ics")
        assert feed.status_code == 200
        assert feed.headers["content-type"].startswith("text/calendar")
        calendar = icalendar.Calendar.from_ical(feed.content)
        shifts = sorted(
            (e.start.astimezone(UTC), e.end.astimezone(UTC), str(e["summary"]))
            for e in calendar.walk("VEVENT")
        )
        assert "On call: primary" in str(calendar["x-wr-calname"])
        by_start = {start: (end, summary) for start, end, summary in shifts}
        assert by_start[saturday] == (
            saturday + timedelta(days=1),
            "On call (primary): carol (override)",
        )
        # Around the override the rotation goes on: bob until Saturday 00:00 (his shift
        # began Friday 09:00), then after it whoever's shift it is (Sunday 00:00 → 09:00).
        assert by_start[datetime(2026, 3, 6, 9, tzinfo=UTC)] == (saturday, "On call (primary): bob")
        sunday = saturday + timedelta(days=1)
        assert by_start[sunday] == (sunday + timedelta(hours=9), "On call (primary): alice")
        assert by_start[datetime(2026, 3, 2, 9, tzinfo=UTC)][1] == "On call (primary): bob"
        uids = [str(e["uid"]) for e in calendar.walk("VEVENT")]
        assert len(uids) == len(set(uids))
        assert (await client.get("/api/v1/schedules/nope.ics")).status_code == 404
