"""Pure escalation decisions: the matrix as configuration, plans, acks and triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.escalator.policy import (
    Policy,
    ack_bounds,
    immediate_triggers,
    plan,
    remediation_trigger,
    schedule,
)
from shared.events import ActionOutcome, EscalationTrigger, Severity
from shared.settings import ConfigError, EscalatorSettings, load_settings

pytestmark = pytest.mark.unit

OPENED = datetime(2026, 5, 1, tzinfo=UTC)
DEFAULT = Policy.from_settings(EscalatorSettings())


def _cells(steps: list[object]) -> list[tuple[int, int]]:
    return [(int(s.after.total_seconds() // 60), s.level) for s in steps]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("severity", "minutes", "level"),
    [
        # CONTRACT §3, cell by cell (P2 at 15 min is "monitor": nothing is sent).
        (Severity.P0, 15, 2),
        (Severity.P0, 60, 3),
        (Severity.P0, 240, 4),
        (Severity.P0, 1440, 5),
        (Severity.P1, 15, 1),
        (Severity.P1, 60, 2),
        (Severity.P1, 240, 3),
        (Severity.P1, 1440, 4),
        (Severity.P2, 15, None),
        (Severity.P2, 60, 1),
        (Severity.P2, 240, 2),
        (Severity.P2, 1440, 3),
        (Severity.P3, 15, None),
        (Severity.P3, 60, None),
        (Severity.P3, 240, None),
        (Severity.P3, 1440, None),
    ],
)
def test_each_matrix_cell(severity: Severity, minutes: int, level: int | None) -> None:
    at = dict(_cells(schedule(severity, OPENED, DEFAULT)))
    assert at.get(minutes) == level


def test_roles_follow_the_runbook() -> None:
    roles = {n: DEFAULT.level(n).role for n in range(1, 6)}
    assert roles == {
        1: "on-call engineer",
        2: "engineering manager",
        3: "technical director",
        4: "VP engineering",
        5: "executive",
    }
    assert DEFAULT.level(1).contacts == ("on-call@company.com",)


def test_matrix_and_levels_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JARVIS_ESCALATOR__MATRIX__P1", "30s=1, 2m=monitor, 1h=executive")
    monkeypatch.setenv("JARVIS_ESCALATOR__LEVELS__LEVEL_2__CONTACTS", '["boss@example.org"]')
    monkeypatch.setenv("JARVIS_ESCALATOR__LEVELS__LEVEL_2__CHANNELS", '["email"]')
    policy = Policy.from_settings(load_settings().escalator)
    assert policy.matrix[Severity.P1] == ((30.0, 1), (120.0, None), (3600.0, 5))
    assert policy.matrix[Severity.P0] == DEFAULT.matrix[Severity.P0]
    assert policy.level(2).contacts == ("boss@example.org",)
    assert policy.level(2).channels == ("email",)
    assert policy.level(2).role == "engineering manager"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("15m=2, 10m=3", "matrix: Value error, p0: thresholds must be strictly ascending"),
        ("15x=2", "matrix.p0: Value error, '15x=2': expected <duration>=<level>"),
        ("15m=6", "matrix.p0.0.level"),
    ],
)
def test_bad_matrix_is_named(monkeypatch: pytest.MonkeyPatch, row: str, message: str) -> None:
    monkeypatch.setenv("JARVIS_ESCALATOR__MATRIX__P0", row)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings()


def test_snapshot_round_trips_as_json() -> None:
    assert Policy.model_validate_json(DEFAULT.model_dump_json()) == DEFAULT


def test_plan_skips_fired_reached_and_collapses_overdue_steps() -> None:
    now = OPENED + timedelta(minutes=30)
    assert _cells(plan(DEFAULT, Severity.P1, OPENED, OPENED)) == [
        (15, 1),
        (60, 2),
        (240, 3),
        (1440, 4),
    ]
    # P0 seen at 30 min: its 15-min step is overdue (fires at once), the rest follow.
    assert _cells(plan(DEFAULT, Severity.P0, OPENED, now)) == [
        (15, 2),
        (60, 3),
        (240, 4),
        (1440, 5),
    ]
    # Seen at 5 h: 15 min, 1 h and 4 h are overdue and collapse into the highest.
    late = OPENED + timedelta(hours=5)
    assert _cells(plan(DEFAULT, Severity.P0, OPENED, late)) == [(240, 4), (1440, 5)]
    fired = frozenset({"time:900s:L2"})
    assert _cells(plan(DEFAULT, Severity.P0, OPENED, now, fired=fired)) == [
        (60, 3),
        (240, 4),
        (1440, 5),
    ]
    assert _cells(plan(DEFAULT, Severity.P0, OPENED, now, reached=3)) == [(240, 4), (1440, 5)]


def test_ack_holds_steps_outside_the_window() -> None:
    assert ack_bounds(0, 0) == (1, 1)
    assert ack_bounds(2, 0) == (2, 2)
    assert ack_bounds(2, 1) == (2, 3)
    assert plan(DEFAULT, Severity.P0, OPENED, OPENED, ack=ack_bounds(0, 0)) == []
    assert _cells(plan(DEFAULT, Severity.P1, OPENED, OPENED, reached=1, ack=(1, 2))) == [(60, 2)]


def test_immediate_triggers() -> None:
    assert immediate_triggers(DEFAULT, services={"backend"}, data_loss=False, security=False) == []
    found = immediate_triggers(
        DEFAULT, services={"backend", "postgres"}, data_loss=True, security=True
    )
    assert [(t.kind, t.level, t.step_id) for t in found] == [
        (EscalationTrigger.MULTIPLE_SYSTEMS, 2, "trigger:multiple_systems"),
        (EscalationTrigger.DATA_LOSS, 3, "trigger:data_loss"),
        (EscalationTrigger.SECURITY, 3, "trigger:security"),
    ]
    assert found[0].reason == "2 systems failing at once: backend, postgres"


@pytest.mark.parametrize(
    ("outcome", "escalate", "fires"),
    [
        (ActionOutcome.FAILED, False, True),
        (ActionOutcome.TIMED_OUT, False, True),
        (ActionOutcome.REJECTED, False, False),
        (ActionOutcome.REJECTED, True, True),
        (ActionOutcome.SUCCEEDED, False, False),
        (ActionOutcome.SKIPPED, False, False),
        (ActionOutcome.AWAITING_APPROVAL, False, False),
        (ActionOutcome.SUCCEEDED, True, True),
    ],
)
def test_remediation_trigger(outcome: ActionOutcome, escalate: bool, fires: bool) -> None:
    trigger = remediation_trigger(
        DEFAULT, action="docker.restart", outcome=outcome, escalate=escalate, detail="boom"
    )
    assert (trigger is not None) == fires
    if trigger:
        assert trigger.kind is EscalationTrigger.REMEDIATION_FAILED
        assert trigger.level == 2
        assert trigger.reason.startswith(f"remediation docker.restart {outcome.value}")
        assert trigger.reason.endswith(": boom")
