"""Policy lint: wrong names stop the program naming the setting; mistakes that still run
(unreachable levels, schedule gaps, levels reaching nobody) are warnings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.escalator.lint import policy_warnings, reachable_levels
from shared.settings import ConfigError, load_settings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, tzinfo=UTC)
ALL = ["slack", "webhook", "email", "pagerduty"]


def _escalator(**section: Any) -> Any:
    return load_settings(None, escalator=section).escalator


def test_the_runbook_defaults_reach_every_level_and_lint_clean() -> None:
    settings = _escalator()
    assert reachable_levels(settings) == {1, 2, 3, 4, 5}
    assert policy_warnings(settings, ALL, NOW) == []
    # Nothing configured at all: one warning, not one per level.
    (nothing,) = policy_warnings(settings, [], NOW)
    assert nothing.startswith("escalator.notifier: no channel is configured")


def test_a_level_naming_an_undefined_schedule_is_an_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError) as error:
        _escalator(levels={"level_1": {"contacts": ["schedule:primary"]}})
    assert "escalator.levels.level_1.contacts: schedule 'primary' is not defined" in str(
        error.value
    )


def test_a_member_outside_the_directory_and_not_an_address_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"escalator.schedules.primary.members: 'carol'"):
        _escalator(schedules={"primary": {"members": ["ops@example.org", "carol"]}})


def test_a_role_naming_an_undefined_schedule_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"escalator.roles.incident_commander.backup"):
        _escalator(roles={"incident_commander": {"backup": "nobody"}})


def test_bad_rotation_and_time_zone_are_named() -> None:
    with pytest.raises(ConfigError, match=r"schedules.primary.rotation"):
        _escalator(schedules={"primary": {"members": ["a@x.org"], "rotation": "fortnightly"}})
    with pytest.raises(ConfigError, match=r"schedules.primary.time_zone"):
        _escalator(schedules={"primary": {"members": ["a@x.org"], "time_zone": "Mars/Olympus"}})


def test_a_level_no_escalation_can_reach_is_a_warning() -> None:
    # P0 jumps to 3 before 2: level 2 would only fire below the level already reached.
    settings = _escalator(
        matrix={"p0": "15m=3, 1h=2", "p1": "", "p2": ""},
        multiple_systems_level=3,
        remediation_failed_level=3,
        data_loss_level=3,
        security_level=3,
    )
    assert reachable_levels(settings) == {3}
    warnings = policy_warnings(settings, ALL, NOW)
    assert "escalator.levels.level_2: can never be reached" in warnings[1]
    assert len([w for w in warnings if "can never be reached" in w]) == 4


def test_levels_reaching_nobody_and_schedule_gaps_are_warnings() -> None:
    settings = _escalator(
        levels={"level_1": {"contacts": ["schedule:primary"], "channels": ["email"]}},
        schedules={"primary": {"members": ["alice", "bob"], "start": "2026-03-10"}},
        people={"alice": {"email": "alice@example.org"}, "bob": {}},
    )
    warnings = policy_warnings(settings, ["slack"], NOW)
    assert any(w.startswith("escalator.levels.level_1: no configured channel") for w in warnings)
    assert any(
        w.startswith("escalator.schedules.primary: nobody is on call from 2026-03-01")
        for w in warnings
    )
    assert any("bob's shifts reach nobody" in w for w in warnings)
    with_email = policy_warnings(settings, ["email"], NOW)
    assert not any("level_1" in w for w in with_email)
